"""Reading real footage, in rooms by role: the manifest and the built-in datasets are thin factories
that only turn their label files into :class:`Record` lists, and this package does the rest.

- :mod:`.decoding`: video files, frame folders and images into uint8 ``[T,H,W,3]``; resizing.
- :mod:`.sampling`: which frames make a clip (a strategy chosen by name), deterministic per
  ``(seed, epoch, index)``.
- :mod:`.store`: :class:`FrameStore`, decoded and resized videos in memory and/or a memmap cache.
- :mod:`.datasets`: :class:`Record`, :class:`VideoClipDataset`, :class:`ImageDataset`.
- :mod:`.splits`: validation carving, ``data.params`` video options (:data:`VIDEO_PARAMS`) and the
  split builders :func:`build_video_splits` / :func:`build_image_splits`.
"""

from .datasets import ImageDataset, Record, VideoClipDataset  # noqa: F401
from .decoding import (IMAGE_EXTS, RESIZE_MODES, VIDEO_EXTS, count_frames, decode_frames, kind_of_path,  # noqa: F401
                       list_frame_files, load_frame, load_image, resize_frames)
from .sampling import SHORT_MODES, STRATEGIES, clip_rng, sample_indices  # noqa: F401
from .splits import (VIDEO_PARAMS, build_image_splits, build_video_splits, carve_val, check_skip, param,  # noqa: F401
                     split_records, strata_key, video_options)
from .store import FrameStore, cache_key, default_cache_dir  # noqa: F401
