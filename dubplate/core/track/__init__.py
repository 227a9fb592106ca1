"""Face tracking: MediaPipe FaceMesh landmarks of one target face per frame, smoothed."""

from dubplate.core.track.facetrack import FaceTrack
from dubplate.core.track.tracker import TargetHint, TrackSettings, track_plate

__all__ = ["FaceTrack", "TargetHint", "TrackSettings", "track_plate"]
