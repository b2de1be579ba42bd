// The official openai npm package against ChatAI's /v1 API: lists models, answers whole and streamed,
// and raises the SDK's own error classes. Prints one JSON line with what it saw; exits 1 on a mismatch.
//   CHATAI_BASE_URL=http://127.0.0.1:8000 CHATAI_API_KEY=cak_... CHATAI_MODEL=<assistant id> node v1_client.mjs
import OpenAI from "openai";

const baseURL = `${process.env.CHATAI_BASE_URL}/v1`;
const model = process.env.CHATAI_MODEL;
const client = new OpenAI({ baseURL, apiKey: process.env.CHATAI_API_KEY, maxRetries: 0 });
const messages = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "hello from node [[tokens:10]]" },
];

function check(condition, what) {
  if (!condition) {
    console.error(`mismatch: ${what}`);
    process.exit(1);
  }
}

async function errorClass(call) {
  try {
    await call();
  } catch (error) {
    return error.constructor.name;
  }
  return null;
}

const models = await client.models.list();
const modelIds = models.data.map((m) => m.id);
check(modelIds.includes(model), "the assistant is among the models");

const whole = await client.chat.completions.create({ model, messages });
const text = whole.choices[0].message.content;
check(whole.object === "chat.completion" && text.startsWith("Echo: hello from node"), "a whole answer");

const stream = await client.chat.completions.create({
  model,
  messages,
  stream: true,
  stream_options: { include_usage: true },
});
let streamed = "";
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) streamed += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
check(streamed === text, "the streamed answer equals the whole one");
check(usage && usage.completion_tokens === 10, "a usage chunk");

const badKey = new OpenAI({ baseURL, apiKey: "cak_wrong", maxRetries: 0 });
const errors = {
  bad_key: await errorClass(() => badKey.models.list()),
  unknown_model: await errorClass(() =>
    client.chat.completions.create({ model: "00000000-0000-0000-0000-000000000000", messages }),
  ),
  other_tenant: await errorClass(() =>
    client.chat.completions.create({ model: process.env.CHATAI_OTHER_MODEL, messages }),
  ),
};
console.log(JSON.stringify({ models: modelIds, text, streamed, usage, errors }));
