"""dubplate: re-animate an actor's lower face in film plates to speak a dubbed track."""

__version__ = "0.1.0"
