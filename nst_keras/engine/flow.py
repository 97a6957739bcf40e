"""Optical flow, warping, reliability weights and the warping error, for video style transfer.

One convention runs through this module (the Middlebury one, which OpenCV, DeepFlow and
Ruder et al.'s scripts share):

* **A flow from frame A to frame B** is an (H, W, 2) float32 array on A's pixel grid:
  ``flow[y, x] = (dx, dy)`` says that the point seen at pixel ``p = (x, y)`` of A is seen at
  ``p + flow(p)`` in B, so ``A(p) ≈ B(p + flow(p))``. `optical_flow(a, b)` returns it.
* **`warp(image, flow)`** samples ``image`` at ``p + flow(p)``: with the flow from A to B,
  ``warp(B, flow) ≈ A``. It pulls B onto A's grid.

So, to carry the stylised frame x_{t-1} onto frame t (Ruder et al., 2016), use the flow from
frame t to frame t-1, the *backward* flow of the paper: ``warp(x_prev, optical_flow(frame_t,
frame_prev))``. Its reliability weights are ``reliability(forward, backward)`` with
``forward = optical_flow(frame_prev, frame_t)`` and ``backward`` that same flow from t to t-1;
they lie on frame t's grid.

OpenCV (``opencv-python-headless``) is imported inside the functions that need it, so that
importing this module costs nothing and works without the ``video`` extra.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: The flow methods `optical_flow` knows.
FLOW_METHODS = ("dis", "farneback")
#: `warp`'s interpolations, by name: OpenCV's remap flags (imported lazily, so by name here).
INTERPOLATIONS = {"linear": "INTER_LINEAR", "cubic": "INTER_CUBIC", "lanczos": "INTER_LANCZOS4"}

#: Ruder et al.'s disocclusion test: |w + ŵ|² > FB_RELATIVE (|w|² + |ŵ|²) + FB_ABSOLUTE.
FB_RELATIVE = 0.01
FB_ABSOLUTE = 0.5
#: Their motion-boundary test: |∇u|² + |∇v|² > MB_RELATIVE |w|² + MB_ABSOLUTE.
MB_RELATIVE = 0.01
MB_ABSOLUTE = 0.002


def _cv2():
    """OpenCV, or an ImportError that says which extra installs it."""
    try:
        import cv2
    except ImportError as error:
        raise ImportError(
            "Optical flow and warping need OpenCV: pip install 'nst-keras[video]' "
            "(or pip install opencv-python-headless)"
        ) from error
    return cv2


def _check_frame(frame, name):
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"`{name}` must be an RGB uint8 array of shape (H, W, 3). "
                         f"Received: {name}=array of shape {frame.shape} and dtype {frame.dtype}")
    return frame


def _check_flow(flow, name, shape=None):
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"`{name}` must be a flow field of shape (H, W, 2). "
                         f"Received: {name}=array of shape {flow.shape}")
    if shape is not None and flow.shape[:2] != tuple(shape):
        raise ValueError(f"`{name}` must cover the image, {tuple(shape)} pixels. "
                         f"Received: {name}=array of shape {flow.shape}")
    return flow


def optical_flow(frame_from, frame_to, method="dis"):
    """The dense optical flow from one frame to another.

    The flow lies on ``frame_from``'s grid and points into ``frame_to``:
    ``frame_from(p) ≈ frame_to(p + flow(p))``, hence ``warp(frame_to, flow) ≈ frame_from``.
    For the paper's backward flow (to carry frame t-1's result onto frame t) call
    ``optical_flow(frame_t, frame_prev)``.

    Both methods run on the grey (luma) frames, as OpenCV's implementations require.
    Ruder et al. used DeepFlow / EpicFlow; OpenCV's DIS (Kroeger et al., 2016) is the
    stand-in here because it ships in the headless wheel and runs in milliseconds.

    Args:
        frame_from: The frame whose grid the flow lies on, RGB uint8 (H, W, 3).
        frame_to: The frame the flow points into, RGB uint8 of the same shape.
        method: ``"dis"`` (``cv2.DISOpticalFlow``, medium preset) or ``"farneback"``
            (``cv2.calcOpticalFlowFarneback``, OpenCV's usual parameters).

    Returns:
        A float32 array (H, W, 2) of displacements (dx, dy) in pixels.

    Raises:
        ValueError: If a frame is not RGB uint8, the shapes differ, or the method is unknown.
        ImportError: If OpenCV is not installed.
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"`method` must be one of {FLOW_METHODS}. Received: method={method!r}")
    frame_from = _check_frame(frame_from, "frame_from")
    frame_to = _check_frame(frame_to, "frame_to")
    if frame_from.shape != frame_to.shape:
        raise ValueError("Both frames must have the same shape. "
                         f"Received: frame_from={frame_from.shape}, frame_to={frame_to.shape}")
    cv2 = _cv2()
    grey_from = cv2.cvtColor(np.ascontiguousarray(frame_from), cv2.COLOR_RGB2GRAY)
    grey_to = cv2.cvtColor(np.ascontiguousarray(frame_to), cv2.COLOR_RGB2GRAY)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(grey_from, grey_to, None)
    else:
        # OpenCV's documented example parameters: 3 levels, scale 0.5, 15 px window.
        flow = cv2.calcOpticalFlowFarneback(grey_from, grey_to, None, pyr_scale=0.5,
                                            levels=3, winsize=15, iterations=3, poly_n=5,
                                            poly_sigma=1.2, flags=0)
    return np.asarray(flow, dtype=np.float32)


def _sample_grid(flow):
    """The absolute sampling positions p + flow(p), as the two float32 maps remap takes."""
    height, width = flow.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return xx + flow[..., 0], yy + flow[..., 1]


def warp(image, flow, interpolation="linear"):
    """The image sampled at ``p + flow(p)`` for every pixel p of the flow's grid.

    With ``flow = optical_flow(a, b)``, ``warp(b, flow)`` is b pulled onto a's grid.
    ``cv2.remap``; points that land outside the image take the nearest border pixel
    (``BORDER_REPLICATE``), which `reliability` marks unreliable anyway.

    Bilinear interpolation (the default) is what Ruder et al.'s scripts and Lai et al.'s
    warping error use, and what `reliability` and `warp_error` keep. It low-passes every
    sub-pixel shift, so a video that warps its previous *result* frame after frame blurs
    it cumulatively (on a 20-frame zoom at 128x96 the chained warps keep ~11% of the
    Laplacian energy); ``"cubic"`` (~64%) and ``"lanczos"`` (8x8 Lanczos, ~79%) keep most of
    it. Those two overshoot: a float result can leave the input's range (uint8 saturates).

    Args:
        image: (H, W) or (H, W, C) array, uint8 or float, any number of channels.
        flow: (H, W, 2) flow on the grid of the result.
        interpolation: ``"linear"`` (bilinear), ``"cubic"`` (bicubic) or ``"lanczos"``.

    Returns:
        The warped image, same shape and dtype as ``image`` (uint8 is rounded).

    Raises:
        ValueError: If the image and the flow differ in height or width, or the
            interpolation is unknown.
        ImportError: If OpenCV is not installed.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"`interpolation` must be one of {tuple(INTERPOLATIONS)}. "
                         f"Received: interpolation={interpolation!r}")
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError("`image` must be (H, W) or (H, W, C). "
                         f"Received: image=array of shape {image.shape}")
    flow = _check_flow(flow, "flow", image.shape[:2])
    cv2 = _cv2()
    map_x, map_y = _sample_grid(flow)
    # remap handles uint8 and float32 natively; other types go through float32 and back.
    work = image if image.dtype in (np.uint8, np.float32) else image.astype(np.float32)
    if work.ndim == 2:
        planes = [work]
    else:
        # remap takes at most 4 channels; warp in groups of up to 4.
        planes = [work[..., i:i + 4] for i in range(0, work.shape[-1], 4)]
    flag = getattr(cv2, INTERPOLATIONS[interpolation])
    warped = [cv2.remap(np.ascontiguousarray(plane), map_x, map_y, flag,
                        borderMode=cv2.BORDER_REPLICATE) for plane in planes]
    if work.ndim == 3:
        # remap drops a trailing axis of length 1.
        warped = [w.reshape(w.shape[:2] + (-1,)) for w in warped]
        result = np.concatenate(warped, axis=-1)
    else:
        result = warped[0]
    return result.astype(image.dtype, copy=False)


def reliability(forward, backward):
    """Ruder et al.'s per-pixel weights c in {0, 1} for a warp by ``backward``.

    The result lies on ``backward``'s grid: it says where ``warp(image, backward)`` can be
    trusted. In the video setting ``backward = optical_flow(frame_t, frame_prev)`` (the flow
    you warp x_{t-1} with) and ``forward = optical_flow(frame_prev, frame_t)``; the weights
    are on frame t. (In general: ``backward`` is the flow from A to B, ``forward`` the flow
    from B to A, and the weights are on A.) This is their
    ``consistencyChecker backward_j_i.flo forward_i_j.flo reliable_j_i.pgm``.

    A pixel p gets 0 when

    * **disocclusion**: with w = backward(p) and ŵ = forward sampled (bilinearly) at p + w,
      the round trip does not come back: |w + ŵ|² ≥ 0.01 (|w|² + |ŵ|²) + 0.5;
    * **motion boundary**: |∇u|² + |∇v|² > 0.01 |w|² + 0.002, with (u, v) = backward and
      ∇ central differences (their 3-tap [-0.5, 0, 0.5] filter; `np.gradient`, which is
      one-sided on the outermost pixels);
    * **out of the frame**: p + w falls outside the image's pixels (the checker's rule too);

    and 1 elsewhere.

    Departures from ``consistencyChecker.cpp``: it blurs the mask (a Gaussian of σ 0.8 with
    disocclusions pushed to -255 first) and so returns soft weights; the paper describes, and
    this returns, the binary {0, 1} mask. Its out-of-frame test also rejects points on the
    last row and column (it needs both bilinear neighbours) and any point a hair left of the
    first; here a point is inside when it lies on the image's pixels, -0.5 ≤ x ≤ W - 0.5 and
    -0.5 ≤ y ≤ H - 0.5 (`warp` replicates the border there), so a still frame, whose flow
    estimate is a few hundredths of a pixel either side of 0, stays reliable to its edge.

    Args:
        forward: (H, W, 2) flow from the target frame's partner back to the target frame.
        backward: (H, W, 2) flow on the target frame's grid (the one you warp with).

    Returns:
        A float32 (H, W) array of 0.0 and 1.0.

    Raises:
        ValueError: If the flows are not (H, W, 2) or differ in shape.
        ImportError: If OpenCV is not installed.
    """
    backward = _check_flow(backward, "backward")
    forward = _check_flow(forward, "forward", backward.shape[:2])
    height, width = backward.shape[:2]

    # ŵ: the forward flow at the point each pixel's backward flow lands on.
    forward_at_target = warp(forward, backward)
    round_trip = np.sum((backward + forward_at_target) ** 2, axis=-1)
    magnitudes = np.sum(backward ** 2, axis=-1) + np.sum(forward_at_target ** 2, axis=-1)
    # The checker uses >= here (and > for the motion boundary); kept as written.
    disoccluded = round_trip >= FB_RELATIVE * magnitudes + FB_ABSOLUTE

    du_dy, du_dx = np.gradient(backward[..., 0])
    dv_dy, dv_dx = np.gradient(backward[..., 1])
    edge = du_dx ** 2 + du_dy ** 2 + dv_dx ** 2 + dv_dy ** 2
    boundary = edge > MB_RELATIVE * np.sum(backward ** 2, axis=-1) + MB_ABSOLUTE

    map_x, map_y = _sample_grid(backward)
    # Half a pixel of slack: the border pixels' own footprint (see the docstring).
    outside = ((map_x < -0.5) | (map_x > width - 0.5)
               | (map_y < -0.5) | (map_y > height - 0.5))

    return (~(disoccluded | boundary | outside)).astype(np.float32)


def _unit_float(frame, name):
    """A frame as float32 in [0, 1]: uint8 is divided by 255, floats are taken as they are."""
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / 255.0
    if not np.issubdtype(frame.dtype, np.floating):
        raise ValueError(f"`{name}` must hold uint8 or float frames. "
                         f"Received: {name} of dtype {frame.dtype}")
    return frame.astype(np.float32, copy=False)


def warp_error(output_frames: Sequence, input_frames: Sequence, method="dis") -> float:
    """Lai et al.'s (2018) warping error of a processed video against its input.

    For each consecutive pair (t, t+1), as in their ``evaluate_WarpError.py``:

    1. the flows come from the *input* frames: ``fw = optical_flow(in[t], in[t+1])`` (on
       frame t, their ``fw_flow``) and ``bw = optical_flow(in[t+1], in[t])``;
    2. the non-occluded mask M on frame t is ``reliability(forward=bw, backward=fw)``
       (disocclusion and motion-boundary tests, as their ``detect_occlusion(bw, fw)``);
    3. the *output* frame t+1 is pulled back onto frame t: ``warped = warp(out[t+1], fw)``;
    4. E_t = Σ M (warped - out[t])² / (C Σ M), the squared difference averaged over the
       channels of the non-occluded pixels; when no pixel is non-occluded, over all of them
       (their fallback).

    The result is the mean of E_t over the T-1 pairs, on images in [0, 1] (uint8 frames are
    divided by 255; float frames are taken to be in [0, 1] already).

    Departures from their script: OpenCV's DIS (or Farnebäck) replaces FlowNet2; bilinear
    sampling replicates the border where theirs pads with zeros, and the mask also drops
    points whose flow leaves the frame (see `reliability`), so a clean pan scores ~0.

    Args:
        output_frames: The processed frames, (H, W, C) uint8 or float, at least two.
        input_frames: The input frames, RGB uint8 (H, W, 3), as many as ``output_frames``
            and of the same height and width.
        method: The flow method, see `optical_flow`.

    Returns:
        The warping error, a float (0 for a perfectly consistent output).

    Raises:
        ValueError: If the sequences differ in length or shape, or hold fewer than 2 frames.
        ImportError: If OpenCV is not installed.
    """
    outputs = list(output_frames)
    inputs = list(input_frames)
    if len(outputs) != len(inputs):
        raise ValueError("There must be as many output frames as input frames. "
                         f"Received: len(output_frames)={len(outputs)}, "
                         f"len(input_frames)={len(inputs)}")
    if len(inputs) < 2:
        raise ValueError("The warping error needs at least two frames. "
                         f"Received: len(input_frames)={len(inputs)}")
    errors = []
    for t in range(len(inputs) - 1):
        current = _unit_float(outputs[t], "output_frames")
        following = _unit_float(outputs[t + 1], "output_frames")
        if current.shape[:2] != np.shape(inputs[t])[:2] or following.shape != current.shape:
            raise ValueError("Output and input frames must share one height and width. "
                             f"Received: output_frames[{t}]={current.shape}, "
                             f"input_frames[{t}]={np.shape(inputs[t])}")
        fw = optical_flow(inputs[t], inputs[t + 1], method)
        bw = optical_flow(inputs[t + 1], inputs[t], method)
        mask = reliability(forward=bw, backward=fw)
        warped = warp(following, fw)
        if current.ndim == 2:
            current, warped = current[..., None], warped[..., None]
        squared = (warped - current) ** 2
        channels = current.shape[-1]
        count = float(mask.sum()) * channels
        if count == 0:
            errors.append(float(squared.mean()))
        else:
            errors.append(float((squared * mask[..., None]).sum() / count))
    return float(np.mean(errors))
