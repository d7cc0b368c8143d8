// Calls the running app with the official @gradio/client, the way its README shows,
// and prints what came back as one JSON line per call (read by tests/test_js_client.py).
//
//   node calls.mjs <app url> <png path>
import { readFile } from "node:fs/promises";
import { Client, handle_file } from "@gradio/client";

const [url, pngPath] = process.argv.slice(2);
const client = await Client.connect(url);

async function call(name, args) {
  try {
    const result = await client.predict(name, args);
    return { call: name, data: result.data };
  } catch (error) {
    // A gr.Error arrives as a status object whose message is the app's sentence.
    return { call: name, error: error?.message ?? String(error) };
  }
}

const results = [];
results.push(
  await call("/generate", {
    prompt: "a paper boat on a puddle, from javascript",
    image_size: "1024x1536",
    background: "opaque",
    quality: "medium",
    num_images: 2,
    output_format: "jpeg",
    sync_mode: true,
  }),
);

// A Blob has no file name: the app must judge it by its bytes.
const png = new Blob([await readFile(pngPath)], { type: "image/png" });
results.push(
  await call("/edit", {
    prompt: "give the boat a red sail",
    images: [handle_file(png)],
    image_size: "auto",
    background: "auto",
    quality: "low",
    input_fidelity: "high",
    num_images: 1,
    output_format: "webp",
  }),
);

// A file that is not an image, also nameless: the app's own sentence, not Gradio's.
const text = new Blob(["just some notes, not a picture"], { type: "text/plain" });
results.push(await call("/edit", { prompt: "make it pop", images: [handle_file(text)] }));

for (const result of results) console.log(JSON.stringify(result));
process.exit(0);
