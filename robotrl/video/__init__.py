"""Videos of evaluation episodes: offscreen rendering and its GL back-ends (`render.py`), MP4 and GIF encoders
(`encoders.py`), filming episodes as they are evaluated (`film.py`) and the `robotrl video` command (`cli.py`)."""
