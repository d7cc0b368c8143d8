// The page's own behaviour, run once when it loads (launch(js=...), ui/theme.py).
() => {
  // ---- An image dropped, pasted or uploaded onto the edit canvas ----------------
  // The editor would show it, but hands it to the server only as its canvas pixels
  // and announces it before it has them. Instead, the file itself goes to a hidden
  // file input (#edit-canvas-drop), whose upload makes it the main reference, first
  // in the gallery; the canvas then shows it from there, ready to paint.
  const CANVAS = "#edit-canvas";
  const inCanvas = (node) => node instanceof Element && node.closest(CANVAS) !== null;
  let pointerOverCanvas = false;

  function imageIn(files) {
    for (const file of files || []) if (file.type.startsWith("image/")) return file;
    return null;
  }

  function forward(file) {
    const input = document.querySelector("#edit-canvas-drop input[type=file]");
    if (!input || !file) return false;
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  // The editor never sees the drag (it would stay in its "dragging" state when it
  // does not get the drop); the canvas is outlined while a file is over it.
  const outline = (on) => {
    const canvas = document.querySelector(CANVAS);
    if (canvas) canvas.classList.toggle("drop-target", on);
  };
  const carriesFiles = (event) =>
    event.dataTransfer !== null && [...event.dataTransfer.types].includes("Files");
  for (const kind of ["dragenter", "dragover"]) {
    document.addEventListener(kind, (event) => {
      if (!inCanvas(event.target) || !carriesFiles(event)) return;
      event.preventDefault();  // allows the drop
      event.stopImmediatePropagation();
      outline(true);
    }, true);
  }
  document.addEventListener("dragleave", (event) => {
    if (inCanvas(event.target) && !inCanvas(event.relatedTarget)) outline(false);
  }, true);
  document.addEventListener("drop", (event) => {
    if (!inCanvas(event.target) || !carriesFiles(event)) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    outline(false);
    const file = imageIn(event.dataTransfer.files);
    if (file) forward(file);
  }, true);
  // The editor's own upload button: its file input, caught before the editor sees it.
  document.addEventListener("change", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file" || !inCanvas(input)) return;
    const file = imageIn(input.files);
    if (!file) return;
    event.stopImmediatePropagation();
    forward(file);
    input.value = "";
  }, true);
  // Ctrl/Cmd+V with the pointer over the canvas, or the focus in it.
  document.addEventListener("pointerover", (event) => {
    pointerOverCanvas = inCanvas(event.target);
  }, true);
  document.addEventListener("paste", (event) => {
    if (!pointerOverCanvas && !inCanvas(document.activeElement)) return;
    const file = imageIn(event.clipboardData && event.clipboardData.files);
    if (!file) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    forward(file);
  }, true);

  // ---- Keyboard: Ctrl/Cmd+Enter runs the current tab, Escape stops its run ------
  // Caught first (capture), so Enter in the prompt does not also submit it.
  const TABS = ["t2i", "edit", "cmp"];
  const shown = (node) => node !== null && node.getClientRects().length > 0;
  function button(kind) {
    for (const tab of TABS) {
      const found = document.querySelector(`#${tab}-${kind}`);
      if (shown(found)) return found;
    }
    return null;
  }
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.altKey) {
      const run = button("run");
      if (!run || run.disabled) return;
      event.preventDefault();
      event.stopPropagation();
      run.click();
    } else if (event.key === "Escape" && !event.ctrlKey && !event.metaKey && !event.altKey) {
      // Stop is harmless when nothing runs; Escape still closes what it closed before.
      const stop = button("stop");
      if (stop) stop.click();
    }
  }, true);
  // Said on the page, so a test (or a curious user) can tell the shortcuts are live.
  document.documentElement.dataset.studioShortcuts = "on";

  // ---- Two bits of Gradio's markup that fail axe-core, mended in place -----------
  // (README, "Accessibility"; tracked upstream in Gradio's accessibility issue.)
  // - An empty gallery's placeholder is a <div aria-label="Empty value"> with no
  //   role, where ARIA forbids a label: it is an image of "empty", so it says so.
  // - An upload area's button is named "Click to upload or drop files" while it
  //   shows "Drop Image Here - or - Click to Upload": a voice-control user saying
  //   what they see would miss it. Its name becomes the text it shows.
  function mend() {
    for (const empty of document.querySelectorAll("div.empty[aria-label]:not([role])")) {
      empty.setAttribute("role", "img");
    }
    for (const upload of document.querySelectorAll("button.upload-container[aria-label]")) {
      const shown = upload.innerText.replace(/\s+/g, " ").trim();
      if (shown && upload.getAttribute("aria-label") !== shown) {
        upload.setAttribute("aria-label", shown);
      }
    }
  }
  let pending = false;
  new MutationObserver(() => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; mend(); });
  }).observe(document.body, { childList: true, subtree: true });
  mend();
}
