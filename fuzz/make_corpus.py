#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): a few small valid
inputs of each format and a few broken ones. Deterministic; run it again after changing it.
Selector bytes (the first byte of some targets' inputs) are described in each target's file."""
import base64
import gzip
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, content):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(content)


def js(value):
    return json.dumps(value, separators=(",", ":")).encode()


# ---- OIP requests (selector: bit 0 response, bit 1 header length in 2 bytes, bit 2 header value)
def oip_binary(header, tail):
    text = js(header)
    return bytes([2]) + struct.pack("<H", len(text)) + text + tail


request = {"id": "r1", "inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 2],
                                   "data": [0.5, 1.0]}],
           "outputs": [{"name": "embedding", "parameters": {"binary_data": True}}],
           "parameters": {"binary_data_output": False}}
put("oip_request", "json_request", b"\x00" + js(request))
put("oip_request", "strings", b"\x00" + js({"inputs": [{"name": "t", "datatype": "BYTES",
                                                        "shape": [2], "data": ["a", "bc"]}]}))
put("oip_request", "int_types", b"\x00" + js({"inputs": [
    {"name": "a", "datatype": "INT64", "shape": [2], "data": [1, -2]},
    {"name": "b", "datatype": "INT32", "shape": [1, 1], "data": [[7]]},
    {"name": "c", "datatype": "UINT8", "shape": [3], "data": [0, 128, 255]}]}))
put("oip_request", "binary_uint8", oip_binary(
    {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 1, 2, 2],
                 "parameters": {"binary_data_size": 4}}]}, b"\x01\x02\x03\x04"))
put("oip_request", "binary_bytes", oip_binary(
    {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [1],
                 "parameters": {"binary_data_size": 7}}]}, struct.pack("<I", 3) + b"abc"))
put("oip_request", "response", b"\x01" + js({"model_name": "fm", "model_version": "1", "id": "r1",
                                              "outputs": [{"name": "logits", "datatype": "FP32",
                                                           "shape": [1, 2], "data": [0.1, 0.9]}]}))
put("oip_request", "header_value", b"\x04" + b"1234")
put("oip_request", "bad_shape", b"\x00" + js({"inputs": [{"name": "x", "datatype": "FP32",
                                                          "shape": [-1, 2], "data": [1, 2]}]}))
put("oip_request", "deep", b"\x00" + b"[" * 80 + b"]" * 80)
put("oip_request", "truncated", b"\x00" + js(request)[:40])

# ---- IDX (selector: bit 0 images, else labels)
images = struct.pack(">IIII", 0x803, 2, 2, 3) + bytes(range(12))
labels = struct.pack(">II", 0x801, 3) + bytes([0, 1, 9])
put("idx", "images", b"\x01" + images)
put("idx", "images_gz", b"\x01" + gzip.compress(images, mtime=0))
put("idx", "labels", b"\x00" + labels)
put("idx", "labels_gz", b"\x00" + gzip.compress(labels, mtime=0))
put("idx", "images_truncated", b"\x01" + images[:-3])
put("idx", "labels_as_images", b"\x01" + labels)
put("idx", "gz_truncated", b"\x00" + gzip.compress(labels, mtime=0)[:-6])

# ---- traces
put("trace", "short", "1\n1\n3\n7\n12\n")
put("trace", "crlf", "0\r\n5\r\n5\r\n10\r\n")
put("trace", "single", "1000")
put("trace", "decreasing", "5\n3\n")
put("trace", "zero_period", "0\n0\n")
put("trace", "garbage", "12a\n")
put("trace", "huge", "1099511627776\n")

# ---- embedding pools
pool = {"format": "edgefm-pool", "version": 1, "dim": 3,
        "classes": [{"name": "cat", "vector": [1, 0, 0]}, {"name": "dog", "vector": [0.5, 0.5, 0]}]}
put("text_pool", "pool", js(pool))
put("text_pool", "wrong_dim", js({**pool, "classes": [{"name": "cat", "vector": [1, 0]}]}))
put("text_pool", "zero_vector", js({**pool, "classes": [{"name": "cat", "vector": [0, 0, 0]}]}))
put("text_pool", "float_dim", js({**pool, "dim": 3.5}))
put("text_pool", "array", b"[1,2,3]")
put("text_pool", "bad_format", js({"format": 7}))

# ---- metadata (selector % 4: 0 sample spec, 1 artifact signature, 2 score, 3 calibration)
put("metadata", "spec_image", b"\x00" + js({"modality": "image", "shape": [3, 32, 32],
                                             "image": {"resize_mode": "longer", "fill": 10},
                                             "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}))
put("metadata", "spec_audio", b"\x00" + js({"modality": "audio", "datatype": "UINT8",
                                             "audio": {"sample_rate": 16000, "window_s": 1.0,
                                                       "n_fft": 400, "hop": 160, "mel_bands": 40}}))
put("metadata", "spec_bad", b"\x00" + js({"shape": [3, 0, 5]}))
artifact = {"device": "cam-1", "version": 2, "arch": "mlp", "size": 1234,
            "sha256": "ab" * 32, "signature": {"alg": "HMAC-SHA256", "value": "00" * 32}}
put("metadata", "artifact", b"\x01" + js(artifact))
put("metadata", "artifact_unsigned", b"\x01" + js({k: v for k, v in artifact.items()
                                                    if k != "signature"}))
put("metadata", "score_margin", b"\x02" + js({"name": "margin"}))
put("metadata", "score_knn", b"\x02" + js({"name": "knn", "params": {
    "k": 1, "dim": 2, "bank": base64.b64encode(struct.pack("<4f", 1, 0, 0, 1)).decode()}}))
put("metadata", "score_proto", b"\x02" + js({"name": "proto", "params": {
    "dim": 2, "classes": [0, 1],
    "prototypes": base64.b64encode(struct.pack("<4f", 1, 0, 0, 1)).decode()}}))
put("metadata", "score_temperature", b"\x02" + js({"name": "max_softmax",
                                                    "params": {"temperature": 0.05}}))
put("metadata", "calibration", b"\x03" + js({
    "format": "edgefm-calibration", "version": 1, "score": "margin", "samples": 10,
    "points": [{"threshold": "-inf", "edge_fraction": 1, "accuracy": 0.8, "offload_ratio": 0},
               {"threshold": 0.3, "edge_fraction": 0.5, "accuracy": 0.9, "offload_ratio": 0.5},
               {"threshold": "+inf", "edge_fraction": 0, "accuracy": 0.95, "offload_ratio": 1}]}))

# ---- customization requests (selector % 4: 0/1 upload, 2 job body, 3 profile and budget;
# bit 2: a header length in the next 2 bytes)
upload = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 1, 4, 4],
                      "parameters": {"binary_data_size": 16}},
                     {"name": "metadata", "datatype": "BYTES", "shape": [1],
                      "data": ['{"label":"cat"}']}]}
text = js(upload)
put("customization_request", "upload_binary",
    bytes([4]) + struct.pack("<H", len(text)) + text + bytes(range(16)))
put("customization_request", "upload_json", b"\x00" + js(
    {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [2, 4, 4], "data": [7] * 32}]}))
put("customization_request", "upload_wrong_shape", b"\x00" + js(
    {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2, 2], "data": [1] * 4}]}))
profile = {"format": "edgefm-device-profile", "version": 1, "device": "cam-1",
           "architectures": [{"arch": "mlp", "latency_ms": 0.5, "peak_memory_mb": 3},
                             {"arch": "cnn", "latency_ms": 2.5, "peak_memory_mb": 12}]}
put("customization_request", "job", b"\x02" + js({"profile": profile, "device": "cam-1"}))
put("customization_request", "job_malformed", b"\x02" + b'{"profile": ')
put("customization_request", "profile_budget", b"\x03" + js(
    {"profile": profile, "budget": {"latency_ms": 1, "memory_mb": 8}}))
put("customization_request", "budget_unmet", b"\x03" + js(
    {"profile": profile, "budget": {"latency_ms": 0.1}}))


# ---- images (selector: output channels and resize mode)
def png(width, height, color_type, bit_depth, rows, extra=b""):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)) +
            extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg(components):
    """A baseline JPEG of 8 x 8 flat grey: one-code Huffman tables (DC category 0, AC EOB)."""
    def segment(marker, data):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(data) + 2) + data
    dqt = segment(0xDB, b"\x00" + b"\x01" * 64)
    sof = segment(0xC0, b"\x08" + struct.pack(">HH", 8, 8) + bytes([components]) +
                  b"".join(bytes([i + 1, 0x11, 0]) for i in range(components)))
    one_code = b"\x01" + b"\x00" * 15 + b"\x00"
    dht = segment(0xC4, b"\x00" + one_code + b"\x10" + one_code)
    sos = segment(0xDA, bytes([components]) + b"".join(bytes([i + 1, 0x00]) for i in range(components)) +
                  b"\x00\x3f\x00")
    bits = "00" * components
    bits += "1" * (-len(bits) % 8)
    scan = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
    return b"\xff\xd8" + dqt + sof + dht + sos + scan + b"\xff\xd9"


put("image", "grey_png", b"\x00" + png(3, 2, 0, 8, [b"\x00\x80\xff", b"\x10\x20\x30"]))
put("image", "rgba_png", b"\x07" + png(2, 2, 6, 8, [b"\xff\x00\x00\x80" * 2, b"\x00\xff\x00\xff" * 2]))
put("image", "palette_trns_png", b"\x02" + png(
    2, 1, 3, 8, [b"\x00\x01"],
    extra=(struct.pack(">I", 6) + b"PLTE" + b"\xff\x00\x00\x00\x00\xff" +
           struct.pack(">I", zlib.crc32(b"PLTE\xff\x00\x00\x00\x00\xff")) +
           struct.pack(">I", 1) + b"tRNS\x80" + struct.pack(">I", zlib.crc32(b"tRNS\x80")))))
put("image", "grey16_png", b"\x05" + png(1, 2, 0, 16, [b"\x12\x34", b"\xff\xff"]))
put("image", "truncated_png", b"\x00" + png(3, 2, 0, 8, [b"\x00\x80\xff", b"\x10\x20\x30"])[:-12])
put("image", "grey_jpeg", b"\x00" + jpeg(1))
put("image", "color_jpeg", b"\x0a" + jpeg(3))
put("image", "truncated_jpeg", b"\x00" + jpeg(3)[:-2])
put("image", "not_an_image", b"\x00GIF89a")


# ---- audio
def wav(rate, channels, bits, frames, fmt=1):
    width = bits // 8
    if fmt == 3:
        data = b"".join(struct.pack("<f", ((i % 50) - 25) / 25.0) for i in range(frames * channels))
    elif bits == 8:
        data = bytes((i * 7) % 256 for i in range(frames * channels))
    else:
        data = b"".join(((i * 997) % (1 << bits) - (1 << (bits - 1))).to_bytes(width, "little", signed=True)
                        for i in range(frames * channels))
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, rate * channels * width, channels * width, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + \
        b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


put("audio", "pcm16_mono", wav(8000, 1, 16, 200))
put("audio", "pcm16_stereo", wav(16000, 2, 16, 100))
put("audio", "pcm8", wav(11025, 1, 8, 300))
put("audio", "pcm24", wav(22050, 1, 24, 100))
put("audio", "float", wav(16000, 1, 32, 100, fmt=3))
put("audio", "truncated", wav(8000, 1, 16, 200)[:60])
put("audio", "no_frames", wav(8000, 1, 16, 0))
put("audio", "not_audio", b"RIFF\x04\x00\x00\x00WAVX")
