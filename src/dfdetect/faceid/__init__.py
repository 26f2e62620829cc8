"""Frozen face-recognition embeddings of every aligned face (the ``face_embeddings`` stage).

Kept out of :mod:`dfdetect.faces` on purpose: ``align_faces`` depends on that whole folder, so
code placed there would rerun face alignment whenever it changed. :mod:`.embed` computes the
embeddings (dlib / FaceNet); :mod:`.reader` reads them back (what the detectors import, so that
training does not depend on the embedder's code). Nothing is imported here.
"""
