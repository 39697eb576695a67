"""The envelope editor (web/envelope_editor.js) in headless Chromium against the real host.

The 2024 host serves its own legacy web UI and our WEB_DIRECTORY; Chromium (Debian's package,
installed by scripts/bootstrap.sh) is driven by playwright. A user's actions are real: the Queue
Prompt button, mouse drags on the editor canvas, the mode menu, the scale slider and the reset
button. What is checked is what leaves the browser — the body of `POST /prompt` — and what the
host's FoleyRMSPredict then reports.
"""

import json
import os
import shutil

import numpy as np
import pytest

from media_files import write_float_wav

pytestmark = pytest.mark.host

NODE = "FoleyRMSPredict"
EXTENSION = "foley_imitator.envelope_editor"
SCRIPT = "/extensions/foley_imitator/envelope_editor.js"
CANVAS = "canvas.foley-envelope-canvas"
RATE = 16000


def chromium_path() -> str | None:
    return (os.environ.get("FOLEY_CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser") or shutil.which("google-chrome"))


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if not executable:
        pytest.skip("no Chromium here: scripts/bootstrap.sh installs Debian's `chromium` with apt-get "
                    "when run as root (or set FOLEY_CHROMIUM to a Chromium binary)")
    from playwright.sync_api import sync_playwright  # requirements-dev.txt

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


def write_bursts(path):
    """3 s of quiet noise with two loud bursts (at 0.5 s and 2.0 s, 0.25 s long)."""
    rng = np.random.default_rng(6)
    samples = 0.01 * rng.standard_normal(3 * RATE)
    for start in (0.5, 2.0):
        i = int(start * RATE)
        samples[i:i + RATE // 4] += 0.6 * np.sin(np.arange(RATE // 4) * 2 * np.pi * 440 / RATE)
    write_float_wav(path, samples, RATE)


class UI:
    """One browser tab on the host's web UI, recording every POST /prompt body it sends."""

    def __init__(self, page, host):
        self.page = page
        self.host = host
        self.errors = []
        self.prompts = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", self._record)

    def _record(self, request):
        if request.method == "POST" and request.url.endswith("/prompt"):
            self.prompts.append(json.loads(request.post_data))

    def js(self, script, arg=None):
        return self.page.evaluate(script, arg)

    def build_graph(self, audio_file: str) -> int:
        """FoleyLoadAudio → FoleyRMSPredict, created as the UI creates nodes; returns the RMS id."""
        return self.js("""(file) => {
            app.graph.clear();
            const load = LiteGraph.createNode("FoleyLoadAudio");
            load.pos = [20, 80];
            app.graph.add(load);
            load.widgets.find((w) => w.name === "audio").value = file;
            const rms = LiteGraph.createNode("FoleyRMSPredict");
            rms.pos = [400, 80];
            app.graph.add(rms);
            load.connect(0, rms, rms.inputs.findIndex((i) => i.type === "AUDIO"));
            // A preview of its plot makes the graph runnable even if the node is no output node.
            const plot = rms.outputs.findIndex((o) => o.type === "IMAGE");
            if (plot >= 0) {
                const preview = LiteGraph.createNode("PreviewImage");
                preview.pos = [800, 80];
                app.graph.add(preview);
                rms.connect(plot, preview, 0);
            }
            app.graph.setDirtyCanvas(true, true);
            window.__rms = rms;
            return rms.id;
        }""", audio_file)

    def value(self) -> str:
        return self.js("__rms.widgets.find((w) => w.name === 'edited_envelope').value")

    def editor(self, expression: str):
        return self.js(f"(() => {{ const e = __rms.foleyEnvelopeEditor; return {expression}; }})()")

    def queue(self) -> tuple[dict, str]:
        """Clicks Queue Prompt; returns the request body the UI sent and the host's prompt id."""
        with self.page.expect_response(lambda r: r.url.endswith("/prompt")
                                       and r.request.method == "POST") as response:
            self.page.click("#queue-button")
        assert response.value.status == 200, response.value.text()
        return self.prompts[-1], response.value.json()["prompt_id"]

    def canvas_box(self) -> dict:
        self.page.wait_for_function("""(selector) => {
            const c = document.querySelector(selector);
            return !!c && !c.hidden && c.getBoundingClientRect().width > 100; }""", arg=CANVAS)
        return self.page.locator(CANVAS).bounding_box()

    def drag(self, points: list[tuple[float, float]]):
        """A mouse drag through these points, each given as fractions of the canvas box."""
        box = self.canvas_box()
        where = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
        self.page.mouse.move(*where[0])
        self.page.mouse.down()
        for x, y in where[1:]:
            self.page.mouse.move(x, y, steps=4)
        self.page.mouse.up()

    def plot_fraction(self, fx: float, fy: float) -> tuple[float, float]:
        """(time_s, value) the editor maps a point of its canvas box to (as drawn, in CSS px)."""
        return tuple(self.js("""([fx, fy]) => {
            const e = __rms.foleyEnvelopeEditor, c = e.canvas;
            const rect = e.plotRect(c.clientWidth, c.clientHeight);
            return e.fromCanvas(rect, fx * c.clientWidth, fy * c.clientHeight);
        }""", [fx, fy]))


@pytest.fixture
def ui(browser, comfy_host, request):
    # A file of its own for each test: the host caches executed nodes by their inputs, and a
    # cached node sends no UI message, so a graph repeated from an earlier test would show nothing.
    audio_file = f"envelope_editor_{request.node.name}.wav"
    write_bursts(comfy_host.input_dir / audio_file)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    assert NODE in comfy_host.object_info(), f"{NODE} is not registered:\n{comfy_host.log_tail()}"
    ui = UI(page, comfy_host)
    ui.audio_file = audio_file
    page.goto(comfy_host.url)
    page.wait_for_function(f"!!(window.app?.graph && LiteGraph.registered_node_types['{NODE}'])")
    yield ui
    context.close()
    assert not ui.errors, f"uncaught errors in the page: {ui.errors}"


def interpolate(points, t):
    times, values = zip(*points)
    return float(np.interp(t, times, values))


def rms_output(comfy_host, prompt_id, node_id):
    result = comfy_host.wait(prompt_id, timeout=300)
    assert result.status == "success", result.error_message
    return result.outputs[str(node_id)]


def test_extension_is_served_and_registered(comfy_host, ui):
    assert SCRIPT in comfy_host.get_json("/extensions")
    assert EXTENSION in ui.js("app.extensions.map((e) => e.name)")
    assert NODE in comfy_host.object_info()
    # The node's own value widget is still there and empty: no edit is the default.
    ui.build_graph(ui.audio_file)
    assert ui.value() == ""
    assert ui.js("__rms.widgets.map((w) => w.name)")[-1] == "envelope_editor"


def test_widget_renders_and_shows_the_executed_prediction(comfy_host, ui):
    rms_id = ui.build_graph(ui.audio_file)
    box = ui.canvas_box()
    assert box["height"] >= 100
    node_box = ui.js("""(() => { const r = app.canvas.canvas.getBoundingClientRect();
        const ds = app.canvas.ds, n = __rms;
        return [(n.pos[0] + ds.offset[0]) * ds.scale + r.left, (n.pos[1] + ds.offset[1]) * ds.scale + r.top,
                n.size[0] * ds.scale, n.size[1] * ds.scale]; })()""")
    # The canvas sits inside the node's body, under its title.
    assert node_box[0] <= box["x"] and box["x"] + box["width"] <= node_box[0] + node_box[2] + 1
    assert node_box[1] <= box["y"] and box["y"] + box["height"] <= node_box[1] + node_box[3] + 1

    body, prompt_id = ui.queue()
    assert body["prompt"][str(rms_id)]["inputs"]["edited_envelope"] == ""
    output = rms_output(comfy_host, prompt_id, rms_id)
    envelope = output["foley_envelope"][0]
    assert envelope["edited"] is False
    ui.page.wait_for_function("!!__rms.foleyEnvelopeEditor.prediction")
    shown = ui.editor("e.prediction")
    assert shown["values"] == pytest.approx(envelope["values"])
    assert shown["duration_s"] == pytest.approx(envelope["duration_s"])
    if output.get("images"):
        ui.page.wait_for_function("!!__rms.foleyEnvelopeEditor.backdrop")

    # The drawing: in the plot's pixel columns at the two bursts the filled prediction reaches
    # high up; between them it lies flat at the bottom.
    ui.page.wait_for_timeout(200)
    filled = ui.js("""(times) => {
        const e = __rms.foleyEnvelopeEditor, c = e.canvas, ratio = window.devicePixelRatio || 1;
        const rect = e.plotRect(c.clientWidth, c.clientHeight), ctx = c.getContext("2d");
        return times.map((t) => {
            const x = Math.round((rect.x + (t / e.duration()) * rect.w) * ratio);
            const d = ctx.getImageData(x, Math.round(rect.y * ratio), 1, Math.round(rect.h * ratio)).data;
            let blue = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i + 2] - d[i] > 30) blue++;
            return blue / (d.length / 4);
        }); }""", [0.62, 2.12, 1.3, 2.8])
    assert min(filled[:2]) > 0.5 and max(filled[2:]) < 0.2, filled


def test_drawn_edit_is_sent_with_the_prompt_and_applied(comfy_host, ui):
    rms_id = ui.build_graph(ui.audio_file)
    _, prompt_id = ui.queue()
    prediction = rms_output(comfy_host, prompt_id, rms_id)["foley_envelope"][0]
    ui.page.wait_for_function("!!__rms.foleyEnvelopeEditor.prediction")

    # Draw a rising stroke from 30 % to 60 % of the width, bottom to top.
    stroke = [(0.30 + 0.03 * i, 0.85 - 0.07 * i) for i in range(11)]
    ui.drag(stroke)
    text = ui.value()
    edit = json.loads(text)
    assert edit["version"] == 1 and edit["mode"] == "replace"
    times = [t for t, _ in edit["points"]]
    assert times == sorted(times) and all(0 <= v <= 1 for _, v in edit["points"])
    # Where the stroke went, the edit follows the pen, not the prediction; outside it, it keeps
    # the prediction (the editor starts from it).
    t_mid, v_mid = ui.plot_fraction(*stroke[5])
    assert interpolate(edit["points"], t_mid) == pytest.approx(v_mid, abs=0.05)
    t_end, v_end = ui.plot_fraction(*stroke[-1])
    assert interpolate(edit["points"], t_end) == pytest.approx(v_end, abs=0.05)
    duration = prediction["duration_s"]
    grid = np.arange(len(prediction["values"])) * duration / len(prediction["values"])
    outside = grid > t_end + 0.1 * duration
    edited = np.array([interpolate(edit["points"], t) for t in grid[outside]])
    assert np.abs(edited - np.array(prediction["values"])[outside]).mean() < 0.05

    body, prompt_id = ui.queue()
    assert body["prompt"][str(rms_id)]["inputs"]["edited_envelope"] == text
    # ...and it is in the workflow saved with the prompt, so a saved workflow keeps the edit.
    saved = next(n for n in body["extra_data"]["extra_pnginfo"]["workflow"]["nodes"] if n["id"] == rms_id)
    assert text in saved["widgets_values"]
    result = rms_output(comfy_host, prompt_id, rms_id)["foley_envelope"][0]
    assert result["edited"] is True
    # The host applied the edit: its envelope now follows the drawn curve, not the prediction.
    values = np.array(result["values"])
    grid = np.arange(len(values)) * duration / len(values)
    drawn = np.array([interpolate(edit["points"], t) for t in grid])
    assert np.abs(values - drawn).mean() < 0.03
    stroke_span = (grid > ui.plot_fraction(*stroke[0])[0]) & (grid < t_end)
    before = np.interp(grid, np.arange(len(prediction["values"])) * duration / len(prediction["values"]),
                       prediction["values"])
    assert np.abs(values - before)[stroke_span].mean() > 0.1


def test_scale_mode_drag_slider_and_reset(comfy_host, ui):
    rms_id = ui.build_graph(ui.audio_file)
    _, prompt_id = ui.queue()
    duration = rms_output(comfy_host, prompt_id, rms_id)["foley_envelope"][0]["duration_s"]
    ui.page.wait_for_function("!!__rms.foleyEnvelopeEditor.prediction")
    ui.page.select_option("select.foley-envelope-mode", "scale")
    assert ui.value() == ""  # switching mode alone is not an edit

    # A click in scale mode adds one multiplier point on a ×1 line (1.5 at three quarters up).
    ui.drag([(0.5, 0.25)])
    edit = json.loads(ui.value())
    assert edit["mode"] == "scale" and len(edit["points"]) == 3
    t_click, m_click = ui.plot_fraction(0.5, 0.25)
    assert interpolate(edit["points"], t_click) == pytest.approx(m_click, abs=0.03)
    assert edit["points"][0] == pytest.approx([0, 1]) and edit["points"][-1] == pytest.approx([duration, 1])

    # Dragging that point down moves it (no new point) to ×0.5.
    ui.drag([(0.5, 0.25), (0.52, 0.5), (0.55, 0.68)])
    edit = json.loads(ui.value())
    assert len(edit["points"]) == 3
    t_new, m_new = ui.plot_fraction(0.55, 0.68)
    assert edit["points"][1] == pytest.approx([t_new, m_new], abs=0.03)
    assert m_new < 0.7

    # The slider scales the whole edit and springs back to ×1.
    ui.page.locator("input.foley-envelope-scale").fill("2")
    doubled = json.loads(ui.value())
    assert [v for _, v in doubled["points"]] == pytest.approx([2 * v for _, v in edit["points"]], abs=2e-3)
    assert ui.page.locator("input.foley-envelope-scale").input_value() == "1"

    body, prompt_id = ui.queue()
    assert json.loads(body["prompt"][str(rms_id)]["inputs"]["edited_envelope"]) == doubled
    assert rms_output(comfy_host, prompt_id, rms_id)["foley_envelope"][0]["edited"] is True

    # A right click on a point deletes it.
    box = ui.canvas_box()
    x, y = ui.js("""() => { const e = __rms.foleyEnvelopeEditor, c = e.canvas;
        const [t, v] = e.points[1]; return e.toCanvas(e.plotRect(c.clientWidth, c.clientHeight), t, v); }""")
    ui.page.mouse.click(box["x"] + x * box["width"] / ui.js(f"document.querySelector('{CANVAS}').clientWidth"),
                        box["y"] + y * box["height"] / ui.js(f"document.querySelector('{CANVAS}').clientHeight"),
                        button="right")
    assert json.loads(ui.value())["points"] == [doubled["points"][0], doubled["points"][2]]

    ui.page.click("button.foley-envelope-reset")
    assert ui.value() == ""
    body, prompt_id = ui.queue()
    assert body["prompt"][str(rms_id)]["inputs"]["edited_envelope"] == ""
    assert rms_output(comfy_host, prompt_id, rms_id)["foley_envelope"][0]["edited"] is False


def test_loaded_workflow_restores_the_edit(ui):
    ui.build_graph(ui.audio_file)
    ui.canvas_box()
    edit = {"version": 1, "mode": "scale", "points": [[0.0, 1.0], [1.5, 0.25], [3.0, 1.0]]}
    ui.js("(text) => { __rms.widgets.find((w) => w.name === 'edited_envelope').value = text; }",
          json.dumps(edit))
    workflow = ui.js("app.graph.serialize()")
    ui.js("(w) => app.loadGraphData(w)", workflow)
    ui.js("window.__rms = app.graph._nodes.find((n) => n.type === 'FoleyRMSPredict')")
    assert json.loads(ui.value()) == edit
    ui.page.wait_for_function("__rms.foleyEnvelopeEditor.points.length === 3")
    assert ui.editor("[e.mode, e.points]") == ["scale", edit["points"]]
    # The editor widget holds no value of its own: the JSON string is the only saved state.
    saved = next(n for n in workflow["nodes"] if n["type"] == NODE)
    assert json.dumps(edit) in saved["widgets_values"]


def test_hosts_without_dom_widgets_get_a_canvas_drawn_editor(comfy_host, ui):
    # LiteGraph front ends older than addDOMWidget: the editor is drawn and edited on the graph canvas.
    # (LiteGraph copies LGraphNode's methods onto each registered node class: remove both.)
    ui.js(f"delete LGraphNode.prototype.addDOMWidget;"
          f" delete LiteGraph.registered_node_types['{NODE}'].prototype.addDOMWidget")
    rms_id = ui.build_graph(ui.audio_file)
    assert ui.js("__rms.widgets.at(-1).type") == "foley_envelope"
    assert ui.page.locator(CANVAS).count() == 0
    ui.page.wait_for_function("__rms.widgets.at(-1).last_y !== undefined")
    # Client coordinates of the editor's plot area, through the graph canvas' transform.
    left, top, width, height = ui.js("""(() => {
        const w = __rms.widgets.at(-1), ds = app.canvas.ds, box = app.canvas.canvas.getBoundingClientRect();
        const rect = __rms.foleyEnvelopeEditor.plotRect(__rms.size[0] - 20, 150);
        const x = (__rms.pos[0] + 10 + rect.x + ds.offset[0]) * ds.scale + box.left;
        const y = (__rms.pos[1] + w.last_y + 4 + rect.y + ds.offset[1]) * ds.scale + box.top;
        return [x, y, rect.w * ds.scale, rect.h * ds.scale]; })()""")
    ui.page.mouse.move(left + 0.3 * width, top + 0.8 * height)
    ui.page.mouse.down()
    ui.page.mouse.move(left + 0.6 * width, top + 0.2 * height, steps=10)
    ui.page.mouse.up()
    edit = json.loads(ui.value())
    assert edit["mode"] == "replace" and len(edit["points"]) >= 5
    values = [v for _, v in edit["points"]]
    assert values[0] == pytest.approx(0.2, abs=0.03) and values[-1] == pytest.approx(0.8, abs=0.03)
    # No run yet, so the time axis is the default 10 s: the stroke spans 3 s to 6 s.
    assert edit["points"][0][0] == pytest.approx(3, abs=0.1) and edit["points"][-1][0] == pytest.approx(6, abs=0.1)
    body, _ = ui.queue()
    assert body["prompt"][str(rms_id)]["inputs"]["edited_envelope"] == ui.value()
