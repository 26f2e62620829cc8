"""Faces: detection (:mod:`.detect`: dlib HOG, dlib CNN, MTCNN), 68-point landmarks
(:mod:`.landmarks`), alignment (:mod:`.align`: similarity to a 5-point template; DefakeHop's
128 x 128 eyes-level face and its eye/mouth patches), the per-frame / per-video pipeline
(:mod:`.pipeline`) and the ``align_faces`` stage body (:mod:`.stage`). Model files ship with
installed packages (:mod:`.models`); nothing is downloaded.
"""
