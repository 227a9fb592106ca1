"""Rendering the actor's face model: a small torch rasteriser and a spherical-harmonics shader.

pytorch3d, the usual choice, has no installable build on this platform; the face mesh has under
a thousand triangles, so a vectorised rasteriser in plain torch is enough on CPU or CUDA.
"""
