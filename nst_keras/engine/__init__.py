"""The algorithm: VGG features, the losses, the objective (whole or tile by tile), the
solvers and their stop token, colour, optical flow, and where it runs (`runtime`).

No files, no printing, no command-line options: these modules compute, and report through
callbacks (`solvers.Progress`) and exceptions that carry the best image (`errors`). Each
imports only `nst_keras.config`, `nst_keras.errors`, `nst_keras.media` and each other.
"""
