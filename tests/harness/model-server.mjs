// A scripted model endpoint for the real coding-agent CLIs, used by
// tests/it/harness_real.rs. No dependencies: Node's own http module.
//
//   node model-server.mjs SCENARIO.json LOG_FILE [--exit-with-stdin]
//
// Listens on 127.0.0.1 with an ephemeral port and prints
// `listening on http://127.0.0.1:PORT` as its first stdout line. With
// --exit-with-stdin it exits when its stdin closes (the test that started
// it ended, however it ended).
//
// SCENARIO.json: {"path": the file to write (absolute), "cwd": the
// harness's working directory (Codex's patch names the file relative to
// it), "content": the file's text, "explanation": the final answer,
// "title": the answer to side requests}.
//
// It speaks three wire formats, each streamed as server-sent events:
//   POST /v1/messages           Anthropic Messages API   (Claude Code)
//   POST /v1/messages/count_tokens                       (Claude Code)
//   POST /v1/responses          OpenAI Responses API     (Codex)
//   POST /v1/chat/completions   OpenAI chat completions  (OpenCode)
// (the same paths without `/v1` too). The script is stateless, read from
// each request: a request that offers the file-writing tool and holds no
// tool result yet gets that tool call (write SCENARIO.path with
// SCENARIO.content); one that holds a tool result gets the final
// explanation (SCENARIO.explanation). A request without the tool (a
// title or summary side request) gets SCENARIO.title as plain text.
// Every request is appended to LOG_FILE as one JSON line (method, path,
// model, tools offered, the answer given), for debugging.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const args = process.argv.slice(2);
const [scenarioFile, logFile] = args.filter((a) => !a.startsWith("--"));
if (args.includes("--exit-with-stdin")) {
  process.stdin.on("end", () => process.exit(0));
  process.stdin.on("error", () => process.exit(0));
  process.stdin.resume();
}
if (!scenarioFile || !logFile) {
  console.error("usage: node model-server.mjs SCENARIO.json LOG_FILE");
  process.exit(2);
}
const scenario = JSON.parse(fs.readFileSync(scenarioFile, "utf8"));
for (const key of ["path", "content", "explanation", "title"]) {
  if (typeof scenario[key] !== "string") {
    console.error(`model-server: the scenario has no string \`${key}\``);
    process.exit(2);
  }
}

let seq = 0;
const id = (prefix) => `${prefix}_${Date.now().toString(36)}${(seq++).toString(36)}`;

function log(entry) {
  fs.appendFileSync(logFile, JSON.stringify({ at: new Date().toISOString(), ...entry }) + "\n");
}

// The patch Codex's apply_patch tool takes, adding the scenario's file
// (relative to the working directory when the path is below it).
function patchText() {
  const rel = path.isAbsolute(scenario.path) && scenario.cwd
    ? path.relative(scenario.cwd, scenario.path)
    : scenario.path;
  const lines = scenario.content.replace(/\n$/, "").split("\n").map((l) => "+" + l);
  return ["*** Begin Patch", `*** Add File: ${rel}`, ...lines, "*** End Patch", ""].join("\n");
}

function sse(res) {
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  return {
    event(name, data) {
      if (name) res.write(`event: ${name}\n`);
      res.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
    },
    end() {
      res.end();
    },
  };
}

// ---- Anthropic Messages API (Claude Code) ----------------------------------

function anthropic(body, res) {
  const tools = (body.tools ?? []).map((t) => t.name);
  const messages = body.messages ?? [];
  const hasResult = messages.some(
    (m) => Array.isArray(m.content) && m.content.some((c) => c.type === "tool_result"),
  );
  let plan;
  if (!tools.includes("Write")) plan = { text: scenario.title };
  else if (hasResult) plan = { text: scenario.explanation };
  else plan = { tool: { name: "Write", input: { file_path: scenario.path, content: scenario.content } } };
  log({ api: "anthropic", model: body.model, stream: !!body.stream, tools, answer: plan.tool ? "tool:Write" : plan.text === scenario.title ? "title" : "explanation" });

  const msgId = id("msg");
  const usage = { input_tokens: 10, output_tokens: 10, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  const block = plan.tool
    ? { type: "tool_use", id: id("toolu"), name: plan.tool.name, input: plan.tool.input }
    : { type: "text", text: plan.text };
  const stop = plan.tool ? "tool_use" : "end_turn";
  if (!body.stream) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({
      id: msgId, type: "message", role: "assistant", model: body.model, content: [block],
      stop_reason: stop, stop_sequence: null, usage,
    }));
    return;
  }
  const s = sse(res);
  s.event("message_start", {
    type: "message_start",
    message: { id: msgId, type: "message", role: "assistant", model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
  });
  if (plan.tool) {
    s.event("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "tool_use", id: block.id, name: block.name, input: {} } });
    const json = JSON.stringify(block.input);
    const half = Math.floor(json.length / 2);
    for (const part of [json.slice(0, half), json.slice(half)]) {
      s.event("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "input_json_delta", partial_json: part } });
    }
  } else {
    s.event("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } });
    for (const part of chunks(plan.text)) {
      s.event("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: part } });
    }
  }
  s.event("content_block_stop", { type: "content_block_stop", index: 0 });
  s.event("message_delta", { type: "message_delta", delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: 10 } });
  s.event("message_stop", { type: "message_stop" });
  s.end();
}

function chunks(text) {
  const out = [];
  for (let i = 0; i < text.length; i += 40) out.push(text.slice(i, i + 40));
  return out.length ? out : [""];
}

// ---- OpenAI Responses API (Codex) ------------------------------------------

function responses(body, res) {
  const tools = body.tools ?? [];
  const names = tools.map((t) => t.name ?? t.type);
  const input = Array.isArray(body.input) ? body.input : [];
  const hasResult = input.some((i) => i.type === "function_call_output" || i.type === "custom_tool_call_output");
  const applyPatch = tools.find((t) => t.name === "apply_patch");
  const shell = tools.find((t) => ["shell", "exec_command", "shell_command"].includes(t.name));
  let item;
  let answer;
  if (hasResult || (!applyPatch && !shell)) {
    const text = hasResult ? scenario.explanation : scenario.title;
    answer = hasResult ? "explanation" : "title";
    item = { type: "message", id: id("msg"), role: "assistant", status: "completed", content: [{ type: "output_text", text, annotations: [] }] };
  } else if (applyPatch && applyPatch.type === "custom") {
    answer = "custom_tool_call:apply_patch";
    item = { type: "custom_tool_call", id: id("ctc"), status: "completed", call_id: id("call"), name: "apply_patch", input: patchText() };
  } else if (applyPatch) {
    answer = "function_call:apply_patch";
    item = { type: "function_call", id: id("fc"), status: "completed", call_id: id("call"), name: "apply_patch", arguments: JSON.stringify({ input: patchText() }) };
  } else {
    answer = `function_call:${shell.name}`;
    const args = shell.name === "shell"
      ? { command: ["apply_patch", patchText()] }
      : { cmd: `apply_patch <<'EOF'\n${patchText()}EOF\n` };
    if (shell.name === "shell_command") args.command = args.cmd;
    item = { type: "function_call", id: id("fc"), status: "completed", call_id: id("call"), name: shell.name, arguments: JSON.stringify(args) };
  }
  log({ api: "responses", model: body.model, stream: !!body.stream, tools: names, answer });
  const respId = id("resp");
  const base = { id: respId, object: "response", created_at: Math.floor(Date.now() / 1000), model: body.model, status: "in_progress", output: [] };
  const usage = { input_tokens: 10, input_tokens_details: { cached_tokens: 0 }, output_tokens: 10, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 20 };
  const s = sse(res);
  let n = 0;
  const ev = (type, data) => s.event(type, { type, sequence_number: n++, ...data });
  ev("response.created", { response: base });
  ev("response.in_progress", { response: base });
  ev("response.output_item.added", { output_index: 0, item: item.type === "message" ? { ...item, status: "in_progress", content: [] } : item });
  if (item.type === "message") {
    const text = item.content[0].text;
    ev("response.content_part.added", { item_id: item.id, output_index: 0, content_index: 0, part: { type: "output_text", text: "", annotations: [] } });
    for (const part of chunks(text)) {
      ev("response.output_text.delta", { item_id: item.id, output_index: 0, content_index: 0, delta: part });
    }
    ev("response.output_text.done", { item_id: item.id, output_index: 0, content_index: 0, text });
    ev("response.content_part.done", { item_id: item.id, output_index: 0, content_index: 0, part: item.content[0] });
  }
  ev("response.output_item.done", { output_index: 0, item });
  ev("response.completed", { response: { ...base, status: "completed", output: [item], usage } });
  s.end();
}

// ---- OpenAI chat completions (OpenCode) -------------------------------------

function chat(body, res) {
  const tools = (body.tools ?? []).map((t) => t.function?.name ?? t.name);
  const messages = body.messages ?? [];
  const hasResult = messages.some((m) => m.role === "tool");
  let plan;
  if (!tools.includes("write")) plan = { text: scenario.title, answer: "title" };
  else if (hasResult) plan = { text: scenario.explanation, answer: "explanation" };
  else plan = { tool: { name: "write", arguments: JSON.stringify({ filePath: scenario.path, content: scenario.content }) }, answer: "tool:write" };
  log({ api: "chat", model: body.model, stream: !!body.stream, tools, answer: plan.answer });
  const chatId = id("chatcmpl");
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta, finish, extra = {}) => ({
    id: chatId, object: "chat.completion.chunk", created, model: body.model,
    choices: [{ index: 0, delta, finish_reason: finish }], ...extra,
  });
  const usage = { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 };
  if (!body.stream) {
    const message = plan.tool
      ? { role: "assistant", content: null, tool_calls: [{ id: id("call"), type: "function", function: plan.tool }] }
      : { role: "assistant", content: plan.text };
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({
      id: chatId, object: "chat.completion", created, model: body.model,
      choices: [{ index: 0, message, finish_reason: plan.tool ? "tool_calls" : "stop" }], usage,
    }));
    return;
  }
  const s = sse(res);
  if (plan.tool) {
    s.event(null, chunk({ role: "assistant", content: null, tool_calls: [{ index: 0, id: id("call"), type: "function", function: { name: plan.tool.name, arguments: "" } }] }, null));
    s.event(null, chunk({ tool_calls: [{ index: 0, function: { arguments: plan.tool.arguments } }] }, null));
    s.event(null, chunk({}, "tool_calls"));
  } else {
    s.event(null, chunk({ role: "assistant", content: "" }, null));
    for (const part of chunks(plan.text)) s.event(null, chunk({ content: part }, null));
    s.event(null, chunk({}, "stop"));
  }
  s.event(null, { id: chatId, object: "chat.completion.chunk", created, model: body.model, choices: [], usage });
  s.event(null, "[DONE]");
  s.end();
}

// ---- the server -------------------------------------------------------------

const server = http.createServer((req, res) => {
  const chunksIn = [];
  req.on("data", (c) => chunksIn.push(c));
  req.on("end", () => {
    const url = new URL(req.url, "http://127.0.0.1");
    const route = url.pathname.replace(/^\/v1(?=\/)/, "");
    let body = {};
    try {
      body = chunksIn.length ? JSON.parse(Buffer.concat(chunksIn).toString("utf8")) : {};
    } catch {
      body = {};
    }
    try {
      if (req.method === "POST" && route === "/messages/count_tokens") {
        log({ method: req.method, path: url.pathname, answer: "count_tokens" });
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ input_tokens: 100 }));
      } else if (req.method === "POST" && route === "/messages") {
        log({ method: req.method, path: url.pathname });
        anthropic(body, res);
      } else if (req.method === "POST" && route === "/responses") {
        log({ method: req.method, path: url.pathname });
        responses(body, res);
      } else if (req.method === "POST" && route === "/chat/completions") {
        log({ method: req.method, path: url.pathname });
        chat(body, res);
      } else if (req.method === "HEAD") {
        // Claude Code's connectivity probe (`HEAD /api/hello`).
        log({ method: req.method, path: url.pathname, answer: 200 });
        res.writeHead(200);
        res.end();
      } else if (req.method === "GET" && route === "/models") {
        log({ method: req.method, path: url.pathname, answer: "models" });
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "list", data: [{ id: "scripted", object: "model", created: 0, owned_by: "aiworklab-tests" }] }));
      } else {
        log({ method: req.method, path: url.pathname, answer: 404 });
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { type: "not_found", message: `the scripted model server has no ${req.method} ${url.pathname}` } }));
      }
    } catch (e) {
      log({ method: req.method, path: url.pathname, error: String(e?.stack ?? e) });
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`);
});
