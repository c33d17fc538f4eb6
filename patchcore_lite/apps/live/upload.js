// Live demo uploads (anywidget): an upload button and a drop zone. Files go to Python one by
// one, in their order, each in pieces of CHUNK bytes: a batch of any total size stays under the
// server's message limit, and each file is scored as soon as its last piece arrives. A file over
// the per-file limit is not sent: Python answers with its message.
const CHUNK = 1 << 20;

function render({ model, el }) {
  el.classList.add("pcl-upload-box");
  const input = document.createElement("input");
  Object.assign(input, { type: "file", multiple: true, accept: "image/*" });
  input.style.display = "none";
  const button = document.createElement("button");
  button.className = "pcl-upload-button jupyter-button widget-button";
  button.textContent = "upload";
  const zone = document.createElement("div");
  zone.className = "pcl-drop";
  zone.textContent = "or drop images here";
  let queue = Promise.resolve();
  let serial = 0;

  async function sendFile(file) {
    const id = `${Date.now()}-${serial++}`;
    if (file.size > model.get("limit")) {
      model.send({ type: "oversize", name: file.name, size: file.size });
      return;
    }
    const count = Math.max(1, Math.ceil(file.size / CHUNK));
    for (let index = 0; index < count; index++) {
      const piece = await file.slice(index * CHUNK, (index + 1) * CHUNK).arrayBuffer();
      model.send({ type: "piece", id, name: file.name, index, count }, undefined, [piece]);
    }
  }
  function sendAll(files) {
    const list = Array.from(files || []);
    if (!list.length) return;
    model.send({ type: "batch", count: list.length });
    for (const file of list) queue = queue.then(() => sendFile(file)).catch((e) =>
      model.send({ type: "failed", name: file.name, error: String(e.message || e) }));
  }
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => { sendAll(input.files); input.value = ""; });
  const over = (on) => (e) => { e.preventDefault(); zone.classList.toggle("pcl-drop-over", on); };
  zone.addEventListener("dragenter", over(true));
  zone.addEventListener("dragover", over(true));
  zone.addEventListener("dragleave", over(false));
  zone.addEventListener("drop", (e) => {
    over(false)(e);
    sendAll(e.dataTransfer && e.dataTransfer.files);
  });
  el.append(button, zone, input);
}

export default { render };
