"""maquina_nb: compare large language models side by side from JupyterLab."""
__version__ = "0.1.0"
