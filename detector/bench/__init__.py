"""`detector bench`: throughput, latency and accuracy of the service, measured side by side against the loop a user
would write (``YOLO.predict`` per frame) and against the model's own batched forward pass on the same device.

Library modules (each usable on its own, from tests or notebooks):

- ``frames``: the deterministic JPEG frames every contender gets;
- ``service_load``: the real service in its own process, driven over loopback gRPC by N streams;
- ``baseline``: per-stream ``YOLO.predict`` loops; ``bound``: the raw forward pass at each batch size;
- ``backends``: ONNX export into a cache and the correctness check against torch;
- ``breakdown``: where a frame's time goes, and the bottleneck;
- ``throughput``: the suite that ties them together; ``report`` and ``plots`` write the results folder;
- ``accuracy`` and ``incident``: hooks for ``detector eval`` and the simulator.
"""
