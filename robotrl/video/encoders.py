"""Video encoders: MP4 (H.264 through imageio-ffmpeg's bundled ffmpeg binary) and GIF (Pillow), each writing to a
temporary file that is renamed over the target when complete (`robotrl.atomic.AtomicFile`)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robotrl.atomic import AtomicFile
from robotrl.errors import UserError

if TYPE_CHECKING:
    import numpy as np

class Mp4Writer:
    """H.264 (libx264, yuv420p, CRF 23) through the ffmpeg binary that imageio-ffmpeg ships; frames stream
    to it as they are rendered, so a long episode needs no memory for its frames."""

    def __init__(self, path: Path, width: int, height: int, fps: float):
        try:
            import imageio_ffmpeg
        except ImportError:
            raise UserError("MP4 videos need imageio-ffmpeg: pip install 'robotrl[train]' (or write a .gif)") from None
        self.file = AtomicFile(path)
        self.frames = 0
        self._gen = imageio_ffmpeg.write_frames(
            str(self.file.tmp), (width, height), fps=Fraction(fps).limit_denominator(1000), codec="libx264",
            pix_fmt_in="rgb24", pix_fmt_out="yuv420p", quality=None, macro_block_size=1, ffmpeg_log_level="quiet",
            output_params=["-crf", "23", "-preset", "fast", "-movflags", "+faststart", "-f", "mp4"])
        self._gen.send(None)

    def append(self, frame: np.ndarray) -> None:
        import numpy as np

        try:
            self._gen.send(np.ascontiguousarray(frame))
        except OSError as e:
            self._failed(e)
        self.frames += 1

    def close(self, ok: bool = True) -> None:
        if self._gen is None:
            return
        gen, self._gen = self._gen, None
        try:
            gen.close()
        except OSError as e:
            self._failed(e)
        except Exception:
            self.file.discard()
            raise
        if ok and self.frames:
            self._check_complete()
            self.file.commit()
        else:
            self.file.discard()

    def _check_complete(self) -> None:
        """ffmpeg killed part-way (a file-size limit, the OOM killer) ends without an error from imageio-ffmpeg:
        count the frames in the file before it replaces anything."""
        import imageio_ffmpeg

        try:
            n = imageio_ffmpeg.count_frames_and_secs(str(self.file.tmp))[0]
        except (RuntimeError, OSError):
            n = 0
        if n != self.frames:
            self._failed(OSError(f"{n} of {self.frames} frames in the file"))

    def _failed(self, e: OSError) -> None:
        """ffmpeg stopped (its own messages are silenced: they were several lines for one cause). Its pipe
        error carries no reason; a full disk, the usual one, is told as the operating system's refusal."""
        import errno
        import shutil

        self._gen = None
        self.file.discard()
        if e.errno not in (None, errno.EPIPE):
            raise e
        if shutil.disk_usage(self.file.path.parent).free < 64 * 2**20:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.file.path)) from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"ffmpeg could not write {self.file.path} ({first}): it stopped part-way; the usual causes "
                        "are a file-size limit (ulimit -f), a full disk or ffmpeg killed (out of memory)") from None


class GifWriter:
    """Animated GIF through Pillow; every frame is mapped to the first frame's 255-colour palette (no
    flicker between frames, and unchanged areas compress to nothing). Meant for short clips: frames are
    held in memory (one byte per pixel) until the file is written."""

    def __init__(self, path: Path, width: int, height: int, fps: float):
        self.file = AtomicFile(path)
        self.delay_ms = 10 * round(100 / fps)
        self.frames = 0
        self._images: list[Any] = []

    def append(self, frame: np.ndarray) -> None:
        from PIL import Image

        img = Image.fromarray(frame)
        if not self._images:
            self._images.append(img.quantize(colors=255, method=Image.Quantize.MEDIANCUT))
        else:
            self._images.append(img.quantize(palette=self._images[0], dither=Image.Dither.NONE))
        self.frames += 1

    def close(self, ok: bool = True) -> None:
        images, self._images = self._images, []
        if not (ok and images):
            self.file.discard()
            return
        try:
            images[0].save(self.file.tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=self.delay_ms, loop=0)
        except OSError as e:  # Pillow writes through a file object: the refusal names no file
            self.file.discard()
            if e.filename is None and e.errno is not None:
                raise OSError(e.errno, e.strerror, str(self.file.path)) from None
            raise
        except BaseException:
            self.file.discard()
            raise
        self.file.commit()


def open_writer(path: Path, width: int, height: int, fps: float) -> Mp4Writer | GifWriter:
    return (GifWriter if Path(path).suffix.lower() == ".gif" else Mp4Writer)(Path(path), width, height, fps)


# settings -----------------------------------------------------------------------------------------------------
