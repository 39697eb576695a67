// Foley Imitator front-end extension: shows the muxed video (with its new soundtrack) and the
// generated audio directly on the nodes that produced them, on 2024 and current ComfyUI front ends.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

function viewUrl(entry) {
  const params = new URLSearchParams({
    filename: entry.filename,
    subfolder: entry.subfolder || "",
    type: entry.type || "output",
  });
  return api.apiURL("/view?" + params.toString());
}

function showMedia(node, tag, entry) {
  let holder = node.__foleyMedia;
  if (!holder) {
    holder = document.createElement("div");
    holder.className = "foley-imitator-preview";
    holder.style.width = "100%";
    if (node.addDOMWidget) {
      node.addDOMWidget("foley_preview", "preview", holder, { serialize: false, hideOnZoom: false });
    }
    node.__foleyMedia = holder;
  }
  holder.replaceChildren();
  const media = document.createElement(tag);
  media.controls = true;
  media.style.width = "100%";
  media.src = viewUrl(entry);
  holder.appendChild(media);
}

app.registerExtension({
  name: "foley_imitator.previews",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("Foley")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const video = message?.foley_video?.[0];
      const audio = message?.foley_audio?.[0];
      if (video) showMedia(this, "video", video);
      else if (audio) showMedia(this, "audio", audio);
    };
  },
});
