"""The embedded demo dataset: real faces that installed packages ship, animated into short
videos, and deepfakes made from them by real manipulation algorithms (landmark face swap,
expression reenactment, decoder-style re-rendering), H.264 at FaceForensics++-like qualities
with a speech track. Entry point: :func:`dfdetect.data.demo.build.build` (``stages/make_demo.py``).
"""
