"""The plugin loads into a real ComfyUI server: nodes listed, web extension served."""

import json


def test_object_info_lists_the_plugin_nodes(comfy_host):
    info = comfy_host.object_info()
    for node in ("FoleyLoadVideo", "FoleyLoadAudio", "FoleyMux"):
        assert node in info, node
        assert info[node]["category"].startswith("Foley Imitator")
    assert info["FoleyMux"]["output_node"] is True
    # New inputs stay optional so saved workflows keep working.
    assert "images" in info["FoleyLoadVideo"]["input"]["optional"]


def test_web_directory_is_served(comfy_host):
    status, payload = comfy_host.request("/extensions")
    assert status == 200
    scripts = json.loads(payload)
    ours = [s for s in scripts if s.startswith("/extensions/foley_imitator/")]
    assert ours, scripts
    status, body = comfy_host.request(ours[0])
    assert status == 200 and b"registerExtension" in body
