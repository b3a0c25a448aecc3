// The Node SDK's audio and moderation calls against a running mock (tests/test_audio.py);
// prints one JSON line of what they got. Usage: node audio.mjs BASE_URL WAV_FILE
import { readFile } from "node:fs/promises";
import OpenAI, { toFile } from "openai";

const [root, wavPath] = process.argv.slice(2);
const openai = new OpenAI({ baseURL: `${root}/v1`, apiKey: "sk-test", maxRetries: 0 });
const wav = await readFile(wavPath);
const out = {};

const speech = await openai.audio.speech.create({
  model: "gpt-4o-mini-tts", voice: "coral", input: "Your order has shipped.", response_format: "wav",
});
const audio = Buffer.from(await speech.arrayBuffer());
out.speech = { type: speech.headers.get("content-type"), riff: audio.subarray(0, 4).toString() };
const file = await toFile(wav, "voice-note.wav", { type: "audio/wav" });
out.text = (await openai.audio.transcriptions.create({ model: "whisper-1", file })).text;
const verbose = await openai.audio.transcriptions.create({
  model: "whisper-1", file: await toFile(wav, "voice-note.wav"), response_format: "verbose_json",
  timestamp_granularities: ["word"],
});
out.duration = verbose.duration;
out.lastWordEnd = verbose.words.at(-1).end;
let streamed = "";
for await (const event of await openai.audio.transcriptions.create({
  model: "gpt-4o-transcribe", file: await toFile(wav, "voice-note.wav"), stream: true,
})) {
  if (event.type === "transcript.text.delta") streamed += event.delta;
}
out.streamed = streamed;
const moderation = await openai.moderations.create({ input: "I will hurt you" });
out.flagged = moderation.results[0].flagged;
console.log(JSON.stringify(out));
