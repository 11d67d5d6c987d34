"""The contract: the numerics the accelerator computes, their bit-exact integer reference in
PyTorch, and the artifact files (codebook, layer and network programs) that carry them.

:mod:`~vq4all.golden.numerics` is the contract; :mod:`~vq4all.golden.layer` and
:mod:`~vq4all.golden.network` are the reference and their artifacts;
:mod:`~vq4all.golden.codebook` the codebook; :mod:`~vq4all.golden.container` the validated file
format they share; :mod:`~vq4all.golden.fileio` atomic writes for everything the project
writes. Depends on nothing else of the project.
"""
