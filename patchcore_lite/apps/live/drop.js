// Live demo drop zone (anywidget): images dropped here go to the Python side, several at once.
// ipywidgets' FileUpload opens a file dialog only; this box takes drag and drop.
function render({ model, el }) {
  el.classList.add("pcl-drop");
  el.textContent = "or drop images here";
  const over = (on) => (e) => { e.preventDefault(); el.classList.toggle("pcl-drop-over", on); };
  el.addEventListener("dragenter", over(true));
  el.addEventListener("dragover", over(true));
  el.addEventListener("dragleave", over(false));
  el.addEventListener("drop", async (e) => {
    over(false)(e);
    const files = Array.from((e.dataTransfer && e.dataTransfer.files) || []);
    if (!files.length) return;
    const buffers = await Promise.all(files.map((f) => f.arrayBuffer()));
    model.send({ type: "files", names: files.map((f) => f.name) }, undefined, buffers);
  });
}

export default { render };
