"""Write every shipped workflow in both formats: workflows/<name>.json (UI) and
workflows/api/<name>.json (API). Run after changing a node's widgets:
    python scripts/make_workflows.py
The host tests convert each UI file through the live /object_info and compare with its twin."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.workflow_builder import Node, to_api, to_ui  # noqa: E402

DEMO_VIDEO = "foley_demo_video.mp4"
DEMO_AUDIO = "foley_demo_reference.wav"
# The official files users download (README "Model files"). Tests and the demo run the same
# workflows on small random stand-ins written in the same formats (harness/model_files.py).
MODELS = {
    "network": "mmaudio_large_44k_v2.pth",
    "clip": "apple_DFN5B-CLIP-ViT-H-14-384_fp16.safetensors",
    "synchformer": "synchformer_state_dict.pth",
    "vae": "v1-44.pth",
    "vocoder": "bigvgan_v2_44khz_128band_512x/bigvgan_generator.pt",
}


def load_video(node_id: int) -> Node:
    return Node(node_id, "FoleyLoadVideo",
                widgets={"video": DEMO_VIDEO, "start_time": 0.0, "max_duration": 0.0, "fps": 0.0},
                outputs=(("video", "FOLEY_VIDEO"), ("preview", "IMAGE"), ("duration", "FLOAT")))


def mux(node_id: int, audio_src: int, video_src: int, prefix: str) -> Node:
    return Node(node_id, "FoleyMux",
                widgets={"filename_prefix": prefix, "audio_codec": "aac", "mode": "replace",
                         "offset_ms": 0.0, "original_gain": 1.0, "new_gain": 1.0},
                links={"audio": (audio_src, 0, "AUDIO"), "video": (video_src, 0, "FOLEY_VIDEO")},
                outputs=(("path", "STRING"),))


def video_to_audio() -> list[Node]:
    return [
        load_video(1),
        Node(2, "FoleyLoadEncoders",
             widgets={"clip": MODELS["clip"], "synchformer": MODELS["synchformer"], "dtype": "auto"},
             outputs=(("encoders", "FOLEY_ENCODERS"),)),
        Node(3, "FoleyVisualEncode",
             widgets={"prompt": "", "negative_prompt": "music", "mask_video": False},
             links={"encoders": (2, 0, "FOLEY_ENCODERS"), "video": (1, 0, "FOLEY_VIDEO")},
             outputs=(("features", "FOLEY_FEATURES"),)),
        Node(4, "FoleyLoadModel", widgets={"model": MODELS["network"], "dtype": "auto"},
             outputs=(("model", "FOLEY_MODEL"),)),
        Node(5, "FoleyLoadCodec",
             widgets={"vae": MODELS["vae"], "vocoder": MODELS["vocoder"], "dtype": "auto"},
             outputs=(("codec", "FOLEY_CODEC"),)),
        Node(6, "FoleyFlowSampler",
             widgets={"seed": 42, "steps": 25, "cfg": 4.5, "duration": 0.0, "batch_size": 1},
             links={"model": (4, 0, "FOLEY_MODEL"), "features": (3, 0, "FOLEY_FEATURES"),
                    "codec": (5, 0, "FOLEY_CODEC")},
             outputs=(("latent", "LATENT"),)),
        Node(7, "FoleyVAEDecode", links={"codec": (5, 0, "FOLEY_CODEC"), "latent": (6, 0, "LATENT")},
             outputs=(("audio", "AUDIO"), ("spectrogram", "IMAGE"))),
        mux(8, 7, 1, "foley/video_to_audio"),
        Node(9, "PreviewImage", links={"images": (7, 1, "IMAGE")}),
    ]


def replace_soundtrack() -> list[Node]:
    return [
        load_video(1),
        Node(2, "FoleyLoadAudio",
             widgets={"audio": DEMO_AUDIO, "start_time": 0.0, "duration": 0.0},
             outputs=(("audio", "AUDIO"),)),
        mux(3, 2, 1, "foley/replace_soundtrack"),
    ]


def reference_foley() -> list[Node]:
    """Video + a reference recording: the sound continues the reference (latent prompting)."""
    return [
        load_video(1),
        Node(2, "FoleyLoadAudio", widgets={"audio": DEMO_AUDIO, "start_time": 0.0, "duration": 0.0},
             outputs=(("audio", "AUDIO"),), title="Reference recording"),
        Node(3, "FoleyLoadEncoders",
             widgets={"clip": MODELS["clip"], "synchformer": MODELS["synchformer"], "dtype": "auto"},
             outputs=(("encoders", "FOLEY_ENCODERS"),)),
        Node(4, "FoleyVisualEncode",
             widgets={"prompt": "", "negative_prompt": "music", "mask_video": False},
             links={"encoders": (3, 0, "FOLEY_ENCODERS"), "video": (1, 0, "FOLEY_VIDEO")},
             outputs=(("features", "FOLEY_FEATURES"),)),
        Node(5, "FoleyLoadModel", widgets={"model": MODELS["network"], "dtype": "auto"},
             outputs=(("model", "FOLEY_MODEL"),)),
        Node(6, "FoleyLoadCodec",
             widgets={"vae": MODELS["vae"], "vocoder": MODELS["vocoder"], "dtype": "auto"},
             outputs=(("codec", "FOLEY_CODEC"),)),
        Node(7, "FoleyStyleEncode", widgets={"offset_seconds": 0.0, "prompt_seconds": 3.0},
             links={"codec": (6, 0, "FOLEY_CODEC"), "audio": (2, 0, "AUDIO")},
             outputs=(("style", "FOLEY_STYLE"), ("info", "STRING"))),
        Node(8, "FoleyFlowSampler",
             widgets={"seed": 42, "steps": 25, "cfg": 4.5, "duration": 0.0, "batch_size": 1,
                      "window_seconds": 0.0, "overlap_seconds": 1.0},
             links={"model": (5, 0, "FOLEY_MODEL"), "features": (4, 0, "FOLEY_FEATURES"),
                    "codec": (6, 0, "FOLEY_CODEC"), "style": (7, 0, "FOLEY_STYLE")},
             outputs=(("latent", "LATENT"),)),
        Node(9, "FoleyVAEDecode", links={"codec": (6, 0, "FOLEY_CODEC"), "latent": (8, 0, "LATENT")},
             outputs=(("audio", "AUDIO"), ("spectrogram", "IMAGE"))),
        mux(10, 9, 1, "foley/reference_foley"),
        Node(11, "PreviewImage", links={"images": (9, 1, "IMAGE")}),
    ]


def gmds_search() -> list[Node]:
    """Video → GMDS Search (noise search scored by the video's motion onsets) → decode → mux."""
    return [
        load_video(1),
        Node(2, "FoleyLoadEncoders",
             widgets={"clip": MODELS["clip"], "synchformer": MODELS["synchformer"], "dtype": "auto"},
             outputs=(("encoders", "FOLEY_ENCODERS"),)),
        Node(3, "FoleyVisualEncode",
             widgets={"prompt": "", "negative_prompt": "music", "mask_video": False},
             links={"encoders": (2, 0, "FOLEY_ENCODERS"), "video": (1, 0, "FOLEY_VIDEO")},
             outputs=(("features", "FOLEY_FEATURES"),)),
        Node(4, "FoleyLoadModel", widgets={"model": MODELS["network"], "dtype": "auto"},
             outputs=(("model", "FOLEY_MODEL"),)),
        Node(5, "FoleyLoadCodec",
             widgets={"vae": MODELS["vae"], "vocoder": MODELS["vocoder"], "dtype": "auto"},
             outputs=(("codec", "FOLEY_CODEC"),)),
        Node(6, "FoleyLoadVerifier",
             widgets={"kind": "motion_onsets", "weight": 1.0, "clap_model": "none", "text": ""},
             links={"video": (1, 0, "FOLEY_VIDEO")}, outputs=(("verifier", "FOLEY_VERIFIER"),)),
        Node(7, "FoleyGMDSSearch",
             # A light search for the demo (9 sampler runs); the node's defaults are the paper's N = 6.
             widgets={"seed": 42, "steps": 25, "cfg": 4.5, "duration": 0.0, "population": 3, "rounds": 1,
                      "beta_small": 0.5, "beta_large": 0.9, "window_seconds": 0.0,
                      "control_strength": 1.0, "control_start": 0.0, "control_end": 1.0},
             links={"model": (4, 0, "FOLEY_MODEL"), "features": (3, 0, "FOLEY_FEATURES"),
                    "codec": (5, 0, "FOLEY_CODEC"), "verifier": (6, 0, "FOLEY_VERIFIER")},
             outputs=(("latent", "LATENT"), ("trace", "STRING"), ("plot", "IMAGE"))),
        Node(8, "FoleyVAEDecode", links={"codec": (5, 0, "FOLEY_CODEC"), "latent": (7, 0, "LATENT")},
             outputs=(("audio", "AUDIO"), ("spectrogram", "IMAGE"))),
        mux(9, 8, 1, "foley/gmds_search"),
        Node(10, "PreviewImage", links={"images": (7, 2, "IMAGE")}, title="Scores per round"),
    ]


def envelope_control() -> list[Node]:
    """video_to_audio steered by an envelope: RMS Predict (motion energy of the video, editable in
    the node's envelope editor) → the sampler's training-free envelope guidance."""
    nodes = {node.id: node for node in video_to_audio()}
    nodes[10] = Node(10, "FoleyRMSPredict", widgets={"edited_envelope": "", "duration": 0.0},
                     links={"video": (1, 0, "FOLEY_VIDEO")},
                     outputs=(("envelope", "FOLEY_ENVELOPE"), ("plot", "IMAGE")))
    sampler = nodes[6]
    sampler.widgets.update({"window_seconds": 0.0, "overlap_seconds": 1.0, "control_strength": 1.0,
                            "control_start": 0.0, "control_end": 1.0})
    sampler.links["envelope"] = (10, 0, "FOLEY_ENVELOPE")
    nodes[8] = mux(8, 7, 1, "foley/envelope_control")
    return [nodes[k] for k in (1, 2, 3, 4, 5, 10, 6, 7, 8, 9)]


def embedded_synced_foley() -> list[Node]:
    """The out-of-the-box synchronised path of the embedded set (docs/embedded_sync.md): the
    RMS-Mapper reads the video's envelope and the envelope ControlNet makes the flow network follow
    it. Every loader names its embedded file, so it runs with no download; the ControlNet fits the
    embedded flow network only (with official MMAudio weights use envelope_control)."""
    nodes = {node.id: node for node in envelope_control()}
    embedded = "(embedded) "
    nodes[2].widgets.update(clip=embedded + "foley_embedded_clip.safetensors",
                            synchformer=embedded + "foley_embedded_synchformer.safetensors")
    nodes[3].widgets.update(negative_prompt="")
    nodes[4].widgets.update(model=embedded + "foley_embedded_16k.safetensors")
    nodes[5].widgets.update(vae=embedded + "foley_embedded_vae_16k.safetensors",
                            vocoder="(built-in) Griffin-Lim, no weights")
    nodes[11] = Node(11, "FoleyLoadRMSMapper",
                     widgets={"mapper": embedded + "foley_embedded_rms_mapper.safetensors",
                              "raft": "none (block-matching flow)", "decoding": "argmax"},
                     outputs=(("mapper", "FOLEY_RMS_MAPPER"),))
    nodes[10].links["mapper"] = (11, 0, "FOLEY_RMS_MAPPER")
    nodes[12] = Node(12, "FoleyLoadControlNet",
                     widgets={"controlnet": embedded + "foley_envelope_controlnet_16k.safetensors",
                              "strength": 1.0, "cfg_mode": "conditional"},
                     outputs=(("controlnet", "FOLEY_CONTROLNET"),))
    nodes[6].links["controlnet"] = (12, 0, "FOLEY_CONTROLNET")
    nodes[8] = mux(8, 7, 1, "foley/embedded_synced_foley")
    return [nodes[k] for k in (1, 2, 3, 4, 5, 11, 10, 12, 6, 7, 8, 9)]


WORKFLOWS = {"video_to_audio": video_to_audio, "replace_soundtrack": replace_soundtrack,
             "reference_foley": reference_foley, "gmds_search": gmds_search,
             "envelope_control": envelope_control, "embedded_synced_foley": embedded_synced_foley}


def main() -> None:
    out = REPO / "workflows"
    (out / "api").mkdir(parents=True, exist_ok=True)
    for name, build in WORKFLOWS.items():
        nodes = build()
        (out / f"{name}.json").write_text(json.dumps(to_ui(nodes), indent=1) + "\n")
        (out / "api" / f"{name}.json").write_text(json.dumps(to_api(nodes), indent=1) + "\n")
        print(f"wrote workflows/{name}.json and workflows/api/{name}.json")


if __name__ == "__main__":
    main()
