"""Small synthetic videos for the flow and video I/O tests: numpy only, seeded, no files.

A smooth multi-scale noise texture has structure at every scale, so optical flow is well
posed everywhere (a flat or periodic image is not).
"""

import numpy as np


def texture(height, width, seed=0):
    """Smooth RGB uint8 noise: sums of box-blurred normal noise at three scales."""
    rng = np.random.default_rng(seed)
    total = np.zeros((height, width, 3))
    for radius in (2, 5, 11):
        noise = rng.normal(size=(height + 2 * radius, width + 2 * radius, 3))
        # A separable box blur, twice (close to a Gaussian), in pure numpy.
        for _ in range(2):
            kernel = np.ones(2 * radius + 1) / (2 * radius + 1)
            noise = np.apply_along_axis(np.convolve, 0, noise, kernel, mode="same")
            noise = np.apply_along_axis(np.convolve, 1, noise, kernel, mode="same")
        noise = noise[radius:radius + height, radius:radius + width]
        total += noise / noise.std()
    total = (total - total.min()) / (total.max() - total.min())
    return np.round(255 * total).astype(np.uint8)


def pan(frames=10, height=64, width=96, dx=2, dy=1, seed=0):
    """A camera pan: the content moves (dx, dy) pixels per frame (right and down if > 0).

    So frame_t(p) = frame_{t-1}(p - (dx, dy)): the flow from t to t-1 is (-dx, -dy) and the
    flow from t-1 to t is (dx, dy), away from the borders the content enters through.
    """
    margin_x, margin_y = abs(dx) * frames, abs(dy) * frames
    canvas = texture(height + 2 * margin_y, width + 2 * margin_x, seed)
    return [canvas[margin_y - t * dy:margin_y - t * dy + height,
                   margin_x - t * dx:margin_x - t * dx + width].copy() for t in range(frames)]


#: Where `moving_square` puts its square: top-left (x, y) at frame 0, side, speed in x.
SQUARE_X, SQUARE_Y, SQUARE_SIDE, SQUARE_SPEED = 20, 20, 24, 6


def moving_square(frames=2, height=64, width=96, seed=1):
    """A textured square sliding right by SQUARE_SPEED px per frame over a still background.

    Between frame t-1 and t the strip x in [x_{t-1}, x_{t-1} + SQUARE_SPEED), over the
    square's rows, is uncovered: seen in frame t, hidden in frame t-1.
    """
    background = texture(height, width, seed)
    square = texture(SQUARE_SIDE, SQUARE_SIDE, seed + 1)
    out = []
    for t in range(frames):
        image = background.copy()
        x = SQUARE_X + SQUARE_SPEED * t
        image[SQUARE_Y:SQUARE_Y + SQUARE_SIDE, x:x + SQUARE_SIDE] = square
        out.append(image)
    return out
