"""The notebook layer: magics, the comparison widget and its static fallback.

Nothing here is imported by ``import maquina_nb``; ``%load_ext maquina_nb`` loads
only :mod:`maquina_nb.notebook.extension` and :mod:`maquina_nb.notebook.magics`.
"""
