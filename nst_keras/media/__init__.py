"""Reading pixels in and writing them out: images (paths, URLs, bytes, arrays; the
preprocessing the network wants; the atomic write) and videos (probe, frames, H.264).
"""
