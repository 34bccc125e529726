// aiworklab teaching kernel: forwards OpenCode's tool and session events to
// `aiworklab agent hook --harness opencode`, which reads OpenCode's own
// database for what happened. Only the event name and the session id are
// passed on. Written by `aiworklab agent install --harness opencode`;
// `aiworklab agent uninstall --harness opencode` removes it.
import { spawn } from "node:child_process";

const AIWORKLAB = "@AIWORKLAB@";

function forward(name, sessionID) {
  try {
    const child = spawn(AIWORKLAB, ["agent", "hook", "--harness", "opencode"], {
      stdio: ["pipe", "ignore", "ignore"],
      detached: true,
    });
    child.on("error", () => {});
    child.stdin.on("error", () => {});
    child.stdin.end(JSON.stringify({ hook_event_name: name, session_id: sessionID ?? null }));
    child.unref();
  } catch {
    // The kernel never gets in the agent's way.
  }
}

export const AiworklabKernel = async () => ({
  "tool.execute.after": async (input) => {
    forward("tool.execute.after", input?.sessionID);
  },
  event: async ({ event }) => {
    const kinds = ["session.created", "session.idle", "session.deleted", "session.compacted"];
    if (kinds.includes(event?.type)) {
      forward(event.type, event.properties?.sessionID ?? event.properties?.info?.id);
    }
  },
});
