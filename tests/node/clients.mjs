// Drives the official Node SDKs against a running mock; prints one JSON line of what they got.
// Usage: node clients.mjs BASE_URL (the server's root, e.g. http://127.0.0.1:8000)
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { generateText, streamText, embedMany, tool, jsonSchema } from "ai";

const root = process.argv[2];
const openai = new OpenAI({ baseURL: `${root}/v1`, apiKey: "sk-node", maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: root, apiKey: "sk-ant-node", maxRetries: 0 });
const user = [{ role: "user", content: "hello from node" }];
const out = {};

const chat = await openai.chat.completions.create({ model: "gpt-4o", messages: user });
out.chat = chat.choices[0].message.content;
let streamed = "";
for await (const chunk of await openai.chat.completions.create({ model: "gpt-4o", messages: user, stream: true })) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
}
out.chatStream = streamed;
const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }];
const called = await openai.chat.completions.create({ model: "gpt-4o", messages: user, tools });
out.toolCall = called.choices[0].message.tool_calls[0].function;
const response = await openai.responses.create({ model: "gpt-4.1", input: "hello from node" });
out.responses = response.output_text;
const events = [];
for await (const event of await openai.responses.create({ model: "gpt-4.1", input: "hello from node", stream: true })) {
  events.push(event.type);
}
out.responsesEvents = [events[0], events.at(-1)];
const vectors = await openai.embeddings.create({ model: "text-embedding-3-small", input: ["a", "b"] });
out.embeddings = vectors.data.map((d) => d.embedding.length);
const message = await anthropic.messages.create({ model: "claude-x", max_tokens: 64, messages: user });
out.messages = message.content[0].text;
const stream = anthropic.messages.stream({ model: "claude-x", max_tokens: 64, messages: user });
out.messagesStream = (await stream.finalMessage()).content[0].text;
try {
  await anthropic.messages.create({ model: "claude-x", max_tokens: 64, messages: [{ role: "user", content: "overload" }] });
} catch (err) {
  out.messagesError = [err.constructor.name, err.status, err.error?.error?.type];
}

// The Vercel AI SDK's Google provider: its base URL carries the version, as Google's does.
const google = createGoogleGenerativeAI({ baseURL: `${root}/v1beta`, apiKey: "AIza-node" });
const text = await generateText({ model: google("gemini-2.5-flash"), prompt: "hello from node" });
out.google = [text.text, text.finishReason, text.usage.inputTokens, text.usage.outputTokens];
const googleStream = streamText({ model: google("gemini-2.5-flash"), prompt: "hello from node" });
out.googleStream = await googleStream.text;
const weather = tool({
  description: "The weather in a city.",
  inputSchema: jsonSchema({ type: "object", properties: { city: { type: "string" } } }),
});
const googleTool = await generateText({
  model: google("gemini-2.5-flash"), prompt: "hello from node", tools: { get_weather: weather },
});
out.googleToolCall = googleTool.toolCalls.map((c) => [c.toolName, c.input]);
const googleVectors = await embedMany({ model: google.textEmbeddingModel("gemini-embedding-001"), values: ["a", "b"] });
out.googleEmbeddings = googleVectors.embeddings.map((e) => e.length);
console.log(JSON.stringify(out));
