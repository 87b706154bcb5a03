"""The shared core: devices, checkpoints, the training loop, metrics, audio, progress, pictures.

It imports no task. Import submodules directly (`from songkit.core.train import fit`);
nothing heavy is imported here.
"""
