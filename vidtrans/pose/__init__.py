"""Poses for pose2person: COCO-18 keypoints, detection, smoothing, normalisation, files, rendering.

Only `PoseDetector` needs mediapipe, and imports it when created. `vidtrans.pose.track` (a clip's
pose track and the pipeline stages that draw it) is not imported here, as it needs the video reader.
"""

from vidtrans.pose.detector import PoseDetector
from vidtrans.pose.files import KeypointTrack, read_keypoints, write_keypoints_npz, write_openpose_json
from vidtrans.pose.keypoints import (
    COLORS,
    DEFAULT_MIN_CONFIDENCE,
    FLIP_INDEX,
    KEYPOINT_INDEX,
    KEYPOINT_NAMES,
    LIMBS,
    NUM_KEYPOINTS,
    check_keypoints,
    flip_keypoints,
    has_person,
)
from vidtrans.pose.normalize import (PoseNormalizer, PoseStats, UpperBodyNormalizer, estimate_pose_stats, fit_to_frame,
                                     normalizer_for)
from vidtrans.pose.posemap import looks_like_pose_map
from vidtrans.pose.render import PoseStyle, render_pose, render_poses
from vidtrans.pose.smoothing import OneEuroFilter, bridge_gaps, smooth_track

__all__ = [
    "COLORS", "DEFAULT_MIN_CONFIDENCE", "FLIP_INDEX", "KEYPOINT_INDEX", "KEYPOINT_NAMES", "LIMBS",
    "NUM_KEYPOINTS", "KeypointTrack", "OneEuroFilter", "PoseDetector", "PoseNormalizer", "PoseStats",
    "PoseStyle", "UpperBodyNormalizer", "bridge_gaps", "check_keypoints", "estimate_pose_stats", "fit_to_frame",
    "flip_keypoints", "has_person", "looks_like_pose_map", "normalizer_for", "read_keypoints", "render_pose",
    "render_poses", "smooth_track", "write_keypoints_npz", "write_openpose_json",
]
