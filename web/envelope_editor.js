// Foley Imitator envelope editor: a canvas under the FoleyRMSPredict node that shows the predicted
// loudness envelope (from the node's last execution) over its video-strip preview, and lets the
// user draw, drag, delete, scale and reset points. The edit lives in the node's `edited_envelope`
// STRING widget as JSON, so it is saved with the workflow and sent with /prompt like any widget:
//   {"version": 1, "mode": "replace" | "scale", "points": [[time_s, value], ...]}   ("" = no edit)
// Works on the 2024 legacy web UI (LiteGraph + addDOMWidget) and on current Vue front ends; where
// a host has no addDOMWidget it falls back to a LiteGraph-drawn widget with context-menu actions.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_NAME = "FoleyRMSPredict";
const VALUE_WIDGET = "edited_envelope";
const EDITOR_WIDGET = "envelope_editor";
const PLOT_HEIGHT = 150; // canvas pixels (CSS) of the plot itself
const TOOLBAR_HEIGHT = 26;
const SCALE_TOP = 2; // scale mode: the top of the plot is a ×2 multiplier, ×1 sits in the middle
const HIT_RADIUS = 7; // pixels within which a press grabs an existing point
const SEED_TOLERANCE = 0.02; // replace mode starts from the prediction, simplified to this error
const SEED_MAX_POINTS = 120;
const DEFAULT_DURATION = 10;
const TIME_EPS = 1e-3;

// ---- the JSON contract (pure functions; the node parses exactly this) -----------------------

export function parseEdit(text) {
  if (typeof text !== "string" || !text.trim()) return null;
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return null;
  }
  if (!data || (data.mode !== "replace" && data.mode !== "scale") || !Array.isArray(data.points)) {
    return null;
  }
  const points = data.points
    .filter((p) => Array.isArray(p) && p.length >= 2 && Number.isFinite(+p[0]) && Number.isFinite(+p[1]))
    .map(([t, v]) => [Math.max(0, +t), clampValue(data.mode, +v)])
    .sort((a, b) => a[0] - b[0]);
  return { mode: data.mode, points };
}

export function serializeEdit(mode, points) {
  if (!points.length) return "";
  // Rounded so the saved workflow stays readable; 1 ms and 1e-4 are far below what matters here.
  const rounded = points.map(([t, v]) => [round(t, 3), round(clampValue(mode, v), 4)]);
  return JSON.stringify({ version: 1, mode, points: rounded });
}

function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function clampValue(mode, v) {
  return mode === "replace" ? Math.min(1, Math.max(0, v)) : Math.max(0, v);
}

// Piecewise-linear through sorted points, constant beyond both ends (as the node interprets it).
export function interpolate(points, t) {
  if (!points.length) return null;
  if (t <= points[0][0]) return points[0][1];
  for (let i = 1; i < points.length; i++) {
    const [t1, v1] = points[i];
    if (t <= t1) {
      const [t0, v0] = points[i - 1];
      return t1 > t0 ? v0 + ((v1 - v0) * (t - t0)) / (t1 - t0) : v1;
    }
  }
  return points[points.length - 1][1];
}

// The node's convention: values[i] sits at time i · duration_s / values.length.
function predictionAt(prediction, t) {
  const values = prediction.values;
  if (!values.length) return 0;
  const x = (t / prediction.duration_s) * values.length;
  const i = Math.max(0, Math.min(values.length - 1, Math.floor(x)));
  const j = Math.min(values.length - 1, i + 1);
  const f = Math.max(0, Math.min(1, x - i));
  return values[i] * (1 - f) + values[j] * f;
}

// The prediction as few points as keep it within SEED_TOLERANCE everywhere (Ramer-Douglas-Peucker
// on vertical error): flat stretches cost two points, sharp onsets keep their corners, so the
// user has something draggable that still is the prediction.
function simplifiedPrediction(prediction) {
  const n = prediction.values.length;
  const duration = prediction.duration_s;
  const ts = [];
  const vs = [];
  for (let i = 0; i < n; i++) {
    ts.push((i / n) * duration);
    vs.push(prediction.values[i]);
  }
  ts.push(duration);
  vs.push(prediction.values[n - 1]);
  for (let tolerance = SEED_TOLERANCE; ; tolerance *= 2) {
    const keep = new Uint8Array(ts.length);
    keep[0] = keep[ts.length - 1] = 1;
    const stack = [[0, ts.length - 1]];
    while (stack.length) {
      const [a, b] = stack.pop();
      let worst = -1;
      let worstError = tolerance;
      for (let i = a + 1; i < b; i++) {
        const line = vs[a] + ((vs[b] - vs[a]) * (ts[i] - ts[a])) / (ts[b] - ts[a] || 1);
        const error = Math.abs(line - vs[i]);
        if (error > worstError) {
          worst = i;
          worstError = error;
        }
      }
      if (worst >= 0) {
        keep[worst] = 1;
        stack.push([a, worst], [worst, b]);
      }
    }
    const points = [];
    keep.forEach((k, i) => k && points.push([ts[i], clampValue("replace", vs[i])]));
    if (points.length <= SEED_MAX_POINTS) return points;
  }
}

// ---- the editor ------------------------------------------------------------------------------

class EnvelopeEditor {
  constructor(node) {
    this.node = node;
    this.mode = "replace";
    this.points = [];
    this.prediction = null; // {duration_s, frame_rate, values, edited}
    this.backdrop = null; // HTMLImageElement of the node's preview (plot + video strip)
    this.lastValue = null; // the widget text this state was read from or written to
    this.drag = null;
    this.hover = -1;
    this.slider = null;
    this.modeSelect = null;
  }

  get valueWidget() {
    return this.node.widgets?.find((w) => w.name === VALUE_WIDGET) || null;
  }

  // The clip's length when known: the last run's, else the node's `duration` input (used to
  // draw an envelope from scratch).
  clipDuration() {
    if (this.prediction?.duration_s > 0) return this.prediction.duration_s;
    const typed = +this.node.widgets?.find((w) => w.name === "duration")?.value;
    return typed > 0 ? typed : null;
  }

  // The time axis: the clip, widened to show points beyond it (an edit drawn before the first
  // run, or loaded from another clip's workflow; the node clips them onto the clip). Strokes are
  // clamped to the axis, so it never changes under a stroke being drawn.
  duration() {
    const last = this.points.length ? this.points[this.points.length - 1][0] : 0;
    return Math.max(this.clipDuration() ?? DEFAULT_DURATION, last);
  }

  top() {
    return this.mode === "scale" ? SCALE_TOP : 1;
  }

  // -- value widget <-> state ----------------------------------------------------------------
  syncFromWidget() {
    const widget = this.valueWidget;
    const text = widget ? String(widget.value ?? "") : "";
    if (text === this.lastValue) return;
    this.lastValue = text;
    const edit = parseEdit(text);
    this.points = edit ? edit.points : [];
    if (edit) this.mode = edit.mode;
    if (this.modeSelect) this.modeSelect.value = this.mode;
    this.redraw();
  }

  commit() {
    const text = serializeEdit(this.mode, this.points);
    this.lastValue = text;
    const widget = this.valueWidget;
    if (widget) {
      widget.value = text;
      // Legacy DOM widgets call the callback from their setter; plain widgets do not.
      if (!widget.element) widget.callback?.(text);
    }
    this.node.setDirtyCanvas?.(true, true);
    app.graph?.setDirtyCanvas?.(true, true);
    this.redraw();
  }

  // Public operations (also what API clients, the context menu and the tests call).
  reset() {
    this.points = [];
    this.commit();
  }

  setMode(mode) {
    if (mode !== "replace" && mode !== "scale") return;
    if (mode === this.mode) return;
    // Replace values and scale multipliers mean different things: a mode switch starts over.
    this.mode = mode;
    this.points = [];
    if (this.modeSelect) this.modeSelect.value = mode;
    this.commit();
  }

  setPoints(mode, points) {
    this.mode = mode === "scale" ? "scale" : "replace";
    this.points = points
      .map(([t, v]) => [Math.max(0, +t), clampValue(this.mode, +v)])
      .sort((a, b) => a[0] - b[0]);
    if (this.modeSelect) this.modeSelect.value = this.mode;
    this.commit();
  }

  scaleBy(factor, base = this.points) {
    this.points = base.map(([t, v]) => [t, clampValue(this.mode, v * factor)]);
  }

  // The curve the user starts editing from: the prediction itself (replace) or ×1 (scale), so
  // that a first local stroke changes only the part of the envelope it covers.
  seed() {
    if (this.points.length) return;
    const duration = this.duration();
    if (this.mode === "scale") {
      this.points = [[0, 1], [duration, 1]];
    } else if (this.prediction?.values?.length) {
      this.points = simplifiedPrediction(this.prediction);
    }
  }

  // -- execution results ------------------------------------------------------------------------
  onExecuted(message) {
    const envelope = message?.foley_envelope?.[0];
    if (envelope && Array.isArray(envelope.values)) {
      this.prediction = {
        duration_s: +envelope.duration_s || DEFAULT_DURATION,
        frame_rate: +envelope.frame_rate || 0,
        values: envelope.values.map(Number),
        edited: !!envelope.edited,
      };
    }
    const image = message?.images?.[0];
    if (image?.filename) {
      const params = new URLSearchParams({
        filename: image.filename,
        subfolder: image.subfolder || "",
        type: image.type || "temp",
      });
      const img = new Image();
      img.onload = () => {
        this.backdrop = img;
        this.redraw();
      };
      img.src = api.apiURL("/view?" + params.toString());
    }
    this.redraw();
  }

  // -- geometry -------------------------------------------------------------------------------
  plotRect(width, height) {
    return { x: 4, y: 4, w: Math.max(10, width - 8), h: Math.max(10, height - 20) };
  }

  toCanvas(rect, t, v) {
    return [rect.x + (t / this.duration()) * rect.w, rect.y + rect.h * (1 - Math.min(v, this.top()) / this.top())];
  }

  fromCanvas(rect, x, y) {
    const t = Math.min(this.duration(), Math.max(0, ((x - rect.x) / rect.w) * this.duration()));
    const v = Math.min(this.top(), Math.max(0, (1 - (y - rect.y) / rect.h) * this.top()));
    return [t, v];
  }

  hitPoint(rect, x, y) {
    let best = -1;
    let bestDist = HIT_RADIUS;
    this.points.forEach(([t, v], i) => {
      const [px, py] = this.toCanvas(rect, t, v);
      const d = Math.hypot(px - x, py - y);
      if (d <= bestDist) {
        best = i;
        bestDist = d;
      }
    });
    return best;
  }

  // -- pointer editing (local coordinates of a width × height editor area) ---------------------
  pointerDown(x, y, width, height, button = 0) {
    const rect = this.plotRect(width, height);
    const hit = this.hitPoint(rect, x, y);
    if (button === 2) {
      if (hit >= 0) {
        this.points.splice(hit, 1);
        this.commit();
      }
      return true;
    }
    if (hit >= 0) {
      this.drag = { kind: "point", index: hit };
    } else {
      this.seed();
      const [t, v] = this.fromCanvas(rect, x, y);
      this.drag = { kind: "stroke", lastT: t, lastX: x };
      this.insertStrokePoint(t, v, t);
    }
    this.redraw();
    return true;
  }

  pointerMove(x, y, width, height) {
    const rect = this.plotRect(width, height);
    if (!this.drag) {
      const hover = this.hitPoint(rect, x, y);
      if (hover !== this.hover) {
        this.hover = hover;
        this.redraw();
      }
      return false;
    }
    let [t, v] = this.fromCanvas(rect, x, y);
    if (this.drag.kind === "point") {
      const i = this.drag.index;
      // A dragged point stays between its neighbours so the points remain sorted in time.
      const lo = i > 0 ? this.points[i - 1][0] + TIME_EPS : 0;
      const hi = i < this.points.length - 1 ? this.points[i + 1][0] - TIME_EPS : this.duration();
      t = Math.min(hi, Math.max(lo, t));
      this.points[i] = [t, clampValue(this.mode, v)];
    } else if (Math.abs(x - this.drag.lastX) >= 3) {
      this.insertStrokePoint(t, v, this.drag.lastT);
      this.drag.lastT = t;
      this.drag.lastX = x;
    }
    this.redraw();
    return true;
  }

  pointerUp() {
    if (!this.drag) return false;
    this.drag = null;
    this.commit();
    return true;
  }

  // Freehand drawing: the stroke replaces every point between its previous and current time.
  insertStrokePoint(t, v, fromT) {
    const lo = Math.min(t, fromT) - TIME_EPS;
    const hi = Math.max(t, fromT) + TIME_EPS;
    this.points = this.points.filter(([pt]) => {
      if (fromT !== t && Math.abs(pt - fromT) <= TIME_EPS) return true; // the stroke's previous point
      return pt < lo || pt > hi;
    });
    this.points.push([t, clampValue(this.mode, v)]);
    this.points.sort((a, b) => a[0] - b[0]);
  }

  // -- drawing --------------------------------------------------------------------------------
  paint(ctx, width, height) {
    const rect = this.plotRect(width, height);
    ctx.save();
    ctx.fillStyle = "#161616";
    ctx.fillRect(0, 0, width, height);
    if (this.backdrop) {
      ctx.globalAlpha = 0.3;
      // The plot spans exactly the clip, like the prediction it came with.
      const end = this.toCanvas(rect, this.clipDuration() ?? this.duration(), 0)[0];
      ctx.drawImage(this.backdrop, rect.x, rect.y, end - rect.x, rect.h);
      ctx.globalAlpha = 1;
    }
    this.paintGrid(ctx, rect);
    const duration = this.duration();
    const clip = this.clipDuration();
    if (clip && clip < duration) {
      // Beyond the end of the clip: shown so those points can be seen and moved, but unused.
      const x = this.toCanvas(rect, clip, 0)[0];
      ctx.fillStyle = "rgba(0, 0, 0, 0.45)";
      ctx.fillRect(x, rect.y, rect.x + rect.w - x, rect.h);
      ctx.fillStyle = "#999";
      ctx.font = "10px sans-serif";
      ctx.textAlign = "right";
      ctx.fillText("after the clip", rect.x + rect.w - 4, rect.y + rect.h - 4);
    }
    const steps = Math.max(2, Math.round(rect.w));
    const trace = (fn) => {
      ctx.beginPath();
      for (let i = 0; i <= steps; i++) {
        const t = (duration * i) / steps;
        const [x, y] = this.toCanvas(rect, t, fn(t));
        i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
      }
    };
    const predicted = this.prediction ? (t) => predictionAt(this.prediction, t) : null;
    const scaleDisplay = this.mode === "scale" ? SCALE_TOP : 1;
    if (predicted) {
      // The prediction is drawn on the 0..1 scale in both modes (scale mode stretches its axis).
      trace((t) => predicted(t) * scaleDisplay);
      ctx.lineTo(rect.x + rect.w, rect.y + rect.h);
      ctx.lineTo(rect.x, rect.y + rect.h);
      ctx.closePath();
      ctx.fillStyle = "rgba(80, 150, 255, 0.28)";
      ctx.fill();
      trace((t) => predicted(t) * scaleDisplay);
      ctx.strokeStyle = "rgba(120, 180, 255, 0.9)";
      ctx.lineWidth = 1;
      ctx.stroke();
    }
    if (this.points.length) {
      if (this.mode === "scale") {
        trace((t) => interpolate(this.points, t));
        ctx.setLineDash([4, 3]);
        ctx.strokeStyle = "#f0a030";
        ctx.lineWidth = 1.5;
        ctx.stroke();
        ctx.setLineDash([]);
        if (predicted) {
          trace((t) => predicted(t) * interpolate(this.points, t) * scaleDisplay);
          ctx.strokeStyle = "#5fe07a";
          ctx.lineWidth = 2;
          ctx.stroke();
        }
      } else {
        trace((t) => interpolate(this.points, t));
        ctx.strokeStyle = "#5fe07a";
        ctx.lineWidth = 2;
        ctx.stroke();
      }
      this.points.forEach(([t, v], i) => {
        const [x, y] = this.toCanvas(rect, t, v);
        ctx.beginPath();
        ctx.arc(x, y, i === this.hover || i === this.drag?.index ? 4.5 : 3, 0, Math.PI * 2);
        ctx.fillStyle = this.mode === "scale" ? "#f0a030" : "#5fe07a";
        ctx.fill();
      });
    }
    ctx.fillStyle = "#bbb";
    ctx.font = "11px sans-serif";
    ctx.textAlign = "left";
    const status = this.points.length
      ? `${this.mode}: ${this.points.length} points`
      : this.prediction
        ? "prediction — drag to draw, drag points to move, right-click deletes"
        : "no prediction yet (run the node) — drag to draw";
    ctx.fillText(status, rect.x + 4, rect.y + 12);
    ctx.restore();
  }

  paintGrid(ctx, rect) {
    ctx.strokeStyle = "rgba(255, 255, 255, 0.08)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (const f of [0.25, 0.5, 0.75]) {
      const y = Math.round(rect.y + rect.h * f) + 0.5;
      ctx.moveTo(rect.x, y);
      ctx.lineTo(rect.x + rect.w, y);
    }
    ctx.stroke();
    if (this.mode === "scale") {
      // ×1 line: where a multiplier leaves the prediction unchanged.
      ctx.strokeStyle = "rgba(240, 160, 48, 0.35)";
      ctx.beginPath();
      const y = Math.round(rect.y + rect.h * (1 - 1 / SCALE_TOP)) + 0.5;
      ctx.moveTo(rect.x, y);
      ctx.lineTo(rect.x + rect.w, y);
      ctx.stroke();
    }
    const duration = this.duration();
    const labels = Math.max(2, Math.floor(rect.w / 45)); // room for "1.25s" without overlap
    const step = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300].find((s) => duration / s <= labels) || 600;
    ctx.fillStyle = "#888";
    ctx.font = "10px sans-serif";
    ctx.textAlign = "center";
    for (let t = 0; t <= duration + 1e-9; t += step) {
      const x = rect.x + (t / duration) * rect.w;
      ctx.fillRect(Math.round(x), rect.y + rect.h, 1, 3);
      ctx.fillText(`${+t.toFixed(2)}s`, Math.min(Math.max(x, rect.x + 10), rect.x + rect.w - 12), rect.y + rect.h + 13);
    }
  }

  redraw() {
    if (this.canvas) this.paintDom();
    else this.node.setDirtyCanvas?.(true, false);
  }

  // -- DOM widget (legacy 2024 UI and current front ends) ---------------------------------------
  buildDom() {
    const root = document.createElement("div");
    root.className = "foley-envelope-editor";
    // Absolute layout only: the legacy UI rewrites the element's `display` and `position` on each
    // frame (both stay "positioned"), so a flex layout on it would not survive.
    Object.assign(root.style, { position: "relative", width: "100%", height: "100%" });

    const bar = document.createElement("div");
    Object.assign(bar.style, {
      display: "flex", alignItems: "center", gap: "6px", height: `${TOOLBAR_HEIGHT - 4}px`,
      fontSize: "11px", color: "#ccc", fontFamily: "sans-serif",
    });
    const select = document.createElement("select");
    select.className = "foley-envelope-mode";
    select.title = "replace: the drawn curve is the envelope; scale: it multiplies the prediction";
    for (const mode of ["replace", "scale"]) select.add(new Option(mode, mode));
    select.value = this.mode;
    select.addEventListener("change", () => this.setMode(select.value));
    this.modeSelect = select;

    const sliderLabel = document.createElement("span");
    sliderLabel.textContent = "×1.00";
    const slider = document.createElement("input");
    slider.type = "range";
    slider.className = "foley-envelope-scale";
    slider.min = "0";
    slider.max = "2";
    slider.step = "0.05";
    slider.value = "1";
    slider.title = "scale the whole edit (springs back to ×1 when released)";
    slider.style.flex = "1";
    // The slider scales the points as they were when the gesture began, then springs back, so
    // the saved JSON stays the single source of truth (no hidden gain).
    let base = null;
    slider.addEventListener("input", () => {
      if (!base) {
        this.seed();
        if (!this.points.length && this.mode === "replace") this.points = [[0, 0.5], [this.duration(), 0.5]];
        base = this.points.map((p) => p.slice());
      }
      this.scaleBy(+slider.value, base);
      sliderLabel.textContent = `×${(+slider.value).toFixed(2)}`;
      this.redraw();
    });
    slider.addEventListener("change", () => {
      base = null;
      slider.value = "1";
      sliderLabel.textContent = "×1.00";
      this.commit();
    });
    this.slider = slider;

    const reset = document.createElement("button");
    reset.className = "foley-envelope-reset";
    reset.textContent = "reset";
    reset.title = "drop the edit: the node uses its prediction unchanged";
    reset.addEventListener("click", () => this.reset());

    bar.append(select, sliderLabel, slider, reset);

    const canvas = document.createElement("canvas");
    canvas.className = "foley-envelope-canvas";
    // The canvas fills its holder absolutely: laid out in flow, its pixel size (which we set from
    // its CSS size) would feed back into its CSS size and overflow the node.
    const holder = document.createElement("div");
    Object.assign(holder.style, { position: "absolute", left: "0", right: "0", top: `${TOOLBAR_HEIGHT}px`, bottom: "0" });
    Object.assign(canvas.style, {
      position: "absolute", left: "0", top: "0", width: "100%", height: "100%",
      cursor: "crosshair", touchAction: "none",
    });
    holder.append(canvas);
    const local = (event) => {
      const box = canvas.getBoundingClientRect();
      // The legacy UI scales the element with a CSS transform: map back to unscaled pixels.
      return [
        ((event.clientX - box.left) / box.width) * canvas.clientWidth,
        ((event.clientY - box.top) / box.height) * canvas.clientHeight,
      ];
    };
    canvas.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      event.stopPropagation();
      canvas.setPointerCapture?.(event.pointerId);
      this.pointerDown(...local(event), canvas.clientWidth, canvas.clientHeight, event.button);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (this.pointerMove(...local(event), canvas.clientWidth, canvas.clientHeight)) event.stopPropagation();
    });
    const end = (event) => {
      canvas.releasePointerCapture?.(event.pointerId);
      this.pointerUp();
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    root.append(bar, holder);
    this.canvas = canvas;
    this.root = root;
    return root;
  }

  paintDom() {
    const canvas = this.canvas;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    this.paint(ctx, width, height);
  }

  attach() {
    const node = this.node;
    const editor = this;
    if (typeof node.addDOMWidget === "function") {
      const widget = node.addDOMWidget(EDITOR_WIDGET, "foley_envelope", this.buildDom(), {
        serialize: false,
        hideOnZoom: false,
        getValue: () => undefined,
        setValue: () => {},
        getMinHeight: () => PLOT_HEIGHT + TOOLBAR_HEIGHT + 20, // 20: the legacy UI's margins
        getHeight: () => PLOT_HEIGHT + TOOLBAR_HEIGHT + 20,
        onDraw: () => {
          // Keeps the canvas in step with text typed into the value widget or a loaded workflow.
          editor.syncFromWidget();
          editor.paintDom();
        },
      });
      widget.serialize = false; // current front ends: keep it out of widgets_values
      this.widget = widget;
      new ResizeObserver(() => this.paintDom()).observe(this.canvas);
    } else {
      this.widget = node.addCustomWidget(this.canvasWidget());
    }
    // Text typed into the value widget (or set by another extension) redraws the editor.
    const valueWidget = this.valueWidget;
    if (valueWidget) {
      const callback = valueWidget.callback;
      valueWidget.callback = function () {
        const result = callback?.apply(this, arguments);
        editor.syncFromWidget();
        return result;
      };
    }
    this.syncFromWidget();
  }

  // Hosts without addDOMWidget: the editor is drawn by LiteGraph and edited through `mouse`.
  canvasWidget() {
    const editor = this;
    const height = PLOT_HEIGHT;
    return {
      name: EDITOR_WIDGET,
      type: "foley_envelope",
      value: null,
      options: { serialize: false },
      serialize: false,
      computeSize(width) {
        return [width, height + 8];
      },
      draw(ctx, node, width, y) {
        editor.syncFromWidget();
        this.lastY = y;
        this.lastWidth = width;
        ctx.save();
        ctx.translate(10, y + 4);
        editor.paint(ctx, width - 20, height);
        ctx.restore();
      },
      mouse(event, pos) {
        const x = pos[0] - 10;
        const y = pos[1] - (this.lastY ?? 0) - 4;
        const w = (this.lastWidth ?? editor.node.size[0]) - 20;
        const type = event.type;
        if (type === "pointerdown" || type === "mousedown") return editor.pointerDown(x, y, w, height, event.button);
        if (type === "pointermove" || type === "mousemove") {
          // LiteGraph only reports the release when it happens over the widget.
          if (editor.drag && event.buttons === 0) return editor.pointerUp();
          return editor.pointerMove(x, y, w, height);
        }
        if (type === "pointerup" || type === "mouseup") return editor.pointerUp();
        return false;
      },
    };
  }
}

app.registerExtension({
  name: "foley_imitator.envelope_editor",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_NAME) return;

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      if (!this.widgets?.some((w) => w.name === VALUE_WIDGET)) return result; // older node def
      this.foleyEnvelopeEditor = new EnvelopeEditor(this);
      this.foleyEnvelopeEditor.attach();
      const size = this.computeSize?.();
      if (size) this.setSize([Math.max(this.size[0], 360, size[0]), Math.max(this.size[1], size[1])]);
      return result;
    };

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const result = onExecuted?.apply(this, arguments);
      this.foleyEnvelopeEditor?.onExecuted(message);
      return result;
    };

    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = onConfigure?.apply(this, arguments);
      this.foleyEnvelopeEditor?.syncFromWidget(); // a loaded workflow's saved edit
      return result;
    };

    const getExtraMenuOptions = nodeType.prototype.getExtraMenuOptions;
    nodeType.prototype.getExtraMenuOptions = function (_, options) {
      const result = getExtraMenuOptions?.apply(this, arguments);
      const editor = this.foleyEnvelopeEditor;
      if (editor && Array.isArray(options)) {
        options.push(
          null,
          { content: "Envelope edit: reset", callback: () => editor.reset() },
          {
            content: `Envelope edit: switch to ${editor.mode === "replace" ? "scale" : "replace"} mode`,
            callback: () => editor.setMode(editor.mode === "replace" ? "scale" : "replace"),
          },
          { content: "Envelope edit: scale ×1.25", callback: () => { editor.seed(); editor.scaleBy(1.25); editor.commit(); } },
          { content: "Envelope edit: scale ×0.8", callback: () => { editor.seed(); editor.scaleBy(0.8); editor.commit(); } },
        );
      }
      return result;
    };
  },
});
