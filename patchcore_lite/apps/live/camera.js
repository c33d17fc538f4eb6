// Live demo camera (anywidget): frames from getUserMedia, one at a time, to the Python side.
// A new frame goes only after Python answered the last one, so a slow machine skips frames
// instead of queueing them. Python shows the heatmap on the page's big panel.
const SIDE = 256; // pixels of the square frame sent (the model resizes it anyway)

function render({ model, el }) {
  el.classList.add("pcl-camera-box");
  const button = document.createElement("button");
  button.className = "pcl-camera-button jupyter-button widget-button";
  const info = document.createElement("span");
  info.className = "pcl-camera-count";
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.style.display = "none";
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = SIDE;
  let stream = null;
  let waiting = false;

  const label = () => {
    button.textContent = stream ? "stop camera" : "camera";
    info.textContent = `${model.get("scored")} frames scored`;
  };
  async function sendFrame() {
    if (!stream || waiting) return;
    if (video.readyState < 2) { setTimeout(sendFrame, 100); return; }
    const w = video.videoWidth, h = video.videoHeight, s = Math.min(w, h);
    canvas.getContext("2d").drawImage(video, (w - s) / 2, (h - s) / 2, s, s, 0, 0, SIDE, SIDE);
    const blob = await new Promise((ok) => canvas.toBlob(ok, "image/jpeg", 0.85));
    if (!stream || !blob) return;
    waiting = true;
    model.send({ type: "frame" }, undefined, [await blob.arrayBuffer()]);
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
  button.addEventListener("click", () => (stream ? stop() : start()));
  el.append(button, info, video);
  label();
  return () => stop();
}

export default { render };
