// Live demo camera (anywidget): frames from getUserMedia, one at a time, to the Python side.
// A new frame goes only after Python answered the last one, so a slow machine skips frames
// instead of queueing them. Each frame is cropped (centred) to the model's aspect, the width /
// height of the images it learned from, then sent whole up to MAX_SIDE pixels as RGB JPEG: the
// model squashes it to its input size exactly as it does its own images. "capture good" marks the
// next frame as a good part to learn from.
const MAX_SIDE = 640;

function render({ model, el }) {
  el.classList.add("pcl-camera-box");
  const make = (tag, cls, text) => {
    const e = document.createElement(tag);
    e.className = cls;
    if (text) e.textContent = text;
    return e;
  };
  const button = make("button", "pcl-camera-button jupyter-button widget-button");
  const info = make("span", "pcl-camera-count");
  const capture = make("button", "pcl-capture jupyter-button widget-button", "capture good");
  const captured = make("span", "pcl-captured");
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.style.display = "none";
  const canvas = document.createElement("canvas");
  let stream = null;
  let waiting = false;
  let captureNext = false;

  const label = () => {
    button.textContent = stream ? "stop camera" : "camera";
    info.textContent = `${model.get("scored")} frames scored`;
    capture.disabled = !stream;
    capture.style.display = stream || model.get("captured") ? "" : "none";
    captured.textContent = model.get("captured") ? `${model.get("captured")} captured` : "";
  };
  function crop(w, h) { // centred crop of the video to the model's aspect, then the output size
    const a = model.get("aspect") || w / h;
    const cw = Math.min(w, Math.round(h * a)), ch = Math.min(h, Math.round(w / a));
    const scale = Math.min(1, MAX_SIDE / Math.max(cw, ch));
    return [(w - cw) / 2, (h - ch) / 2, cw, ch, Math.round(cw * scale), Math.round(ch * scale)];
  }
  async function sendFrame() {
    if (!stream || waiting) return;
    if (video.readyState < 2) { setTimeout(sendFrame, 100); return; }
    const [x, y, cw, ch, ow, oh] = crop(video.videoWidth, video.videoHeight);
    canvas.width = ow;
    canvas.height = oh;
    canvas.getContext("2d").drawImage(video, x, y, cw, ch, 0, 0, ow, oh);
    const blob = await new Promise((ok) => canvas.toBlob(ok, "image/jpeg", 0.95));
    if (!stream || !blob) return;
    waiting = true;
    model.send({ type: "frame", capture: captureNext }, undefined, [await blob.arrayBuffer()]);
    captureNext = false;
  }
  async function start() {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
      video.srcObject = stream;
      await video.play();
      model.set("streaming", true);
      model.save_changes();
      label();
      sendFrame();
    } catch (e) {
      stream = null;
      info.textContent = `camera unavailable: ${e.message || e}`;
    }
  }
  function stop() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    waiting = false;
    model.set("streaming", false);
    model.save_changes();
    label();
  }
  model.on("msg:custom", (msg) => {
    if (msg && msg.type === "scored") { waiting = false; sendFrame(); }
  });
  model.on("change:scored", label);
  model.on("change:captured", label);
  button.addEventListener("click", () => (stream ? stop() : start()));
  capture.addEventListener("click", () => { captureNext = true; });
  el.append(button, info, capture, captured, video);
  label();
  return () => stop();
}

export default { render };
