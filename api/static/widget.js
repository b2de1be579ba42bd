/* ChatAI widget: <script src="https://chat.example.com/widget.js" data-public-key="pk_..." async></script>
 * Options (data- attributes): public-key (required), title, greeting (else the assistant's), color, text-color,
 * position (right | left), api-base (default: where this script comes from), mode (launcher | page). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.dataset.publicKey) return;
  var cfg = script.dataset;
  var key = cfg.publicKey;
  var api = (cfg.apiBase || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  var pageMode = cfg.mode === "page";
  var storageKey = "chatai-widget:" + key;
  var TERMINAL = { completed: 1, failed: 1, cancelled: 1 };

  var session = null; // {token, dialogId}
  var socket = null, socketOpen = false, wsFailures = 0, polling = false, stopped = false;
  var lastEventId = null; // the newest event applied: resumes replay, drops repeats
  var replies = {}; // reply id -> {el, text, done}
  var messages = {}; // message ids already shown

  // ---- DOM (inside a shadow root, so host styles neither leak in nor out) ----
  var host = document.createElement("div");
  host.setAttribute("data-chatai-widget", "");
  var root = host.attachShadow({ mode: "open" });
  var color = cfg.color || "#2563eb", textColor = cfg.textColor || "#fff";
  var side = cfg.position === "left" ? "left" : "right";
  root.innerHTML =
    "<style>" +
    ":host{all:initial}*{box-sizing:border-box;font:14px/1.4 system-ui,sans-serif}" +
    ".launcher{position:fixed;bottom:20px;" + side + ":20px;width:56px;height:56px;border-radius:50%;border:0;" +
    "background:var(--c);color:var(--t);cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center;z-index:2147483646}" +
    ".panel{position:fixed;bottom:88px;" + side + ":20px;width:360px;max-width:calc(100vw - 40px);height:520px;" +
    "max-height:calc(100vh - 120px);background:#fff;color:#111;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);" +
    "display:flex;flex-direction:column;overflow:hidden;z-index:2147483647}" +
    ".panel[hidden]{display:none}.page{position:static;width:100%;height:100vh;max-width:none;max-height:none;border-radius:0;box-shadow:none}" +
    "header{background:var(--c);color:var(--t);padding:12px 14px;display:flex;align-items:center;justify-content:space-between}" +
    "header h2{margin:0;font-weight:600;font-size:15px}header button{background:none;border:0;color:inherit;font-size:20px;cursor:pointer}" +
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f7f7f8}" +
    ".msg{max-width:85%;padding:8px 11px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word}" +
    ".user{align-self:flex-end;background:var(--c);color:var(--t)}.assistant{align-self:flex-start;background:#fff;border:1px solid #e3e3e6}" +
    ".typing::after{content:'\\2026';animation:b 1s steps(2) infinite}@keyframes b{50%{opacity:.2}}" +
    ".failed{border-color:#dc2626;color:#991b1b}.status{padding:6px 12px;font-size:12px;color:#991b1b;background:#fef2f2}" +
    ".status:empty{display:none}form{display:flex;gap:8px;padding:10px;border-top:1px solid #e3e3e6}" +
    "textarea{flex:1;resize:none;border:1px solid #ccc;border-radius:8px;padding:8px;height:40px;color:#111;background:#fff}" +
    "form button{background:var(--c);color:var(--t);border:0;border-radius:8px;padding:0 14px;cursor:pointer}" +
    "button:focus-visible,textarea:focus-visible{outline:2px solid #111;outline-offset:2px}" +
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}" +
    ".assistant p{margin:0 0 6px}.assistant>:last-child{margin-bottom:0}" +
    ".assistant ul,.assistant ol{margin:0 0 6px;padding-left:20px}code{font:13px/1.4 ui-monospace,monospace;background:#f0f0f2;border-radius:4px;padding:0 3px}" +
    "pre{margin:0 0 6px;padding:8px;background:#f0f0f2;border-radius:6px;overflow-x:auto}pre code{padding:0;white-space:pre}a{color:inherit}</style>" +
    '<button class="launcher" type="button" aria-haspopup="dialog" aria-expanded="false" aria-label="Open chat"><svg width="26" height="26" viewBox="0 0 24 24" aria-hidden="true" fill="currentColor">' +
    '<path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg></button>' +
    '<section class="panel" role="dialog" aria-modal="false" hidden>' +
    '<header><h2 class="title"></h2><button class="close" type="button" aria-label="Close chat">&times;</button></header>' +
    '<div class="log" role="log" aria-live="polite" aria-relevant="additions" tabindex="0"></div>' +
    '<div class="status" role="alert"></div><div class="sr" aria-live="polite"></div>' +
    '<form><label class="sr" for="chatai-input">Message</label>' +
    '<textarea id="chatai-input" rows="1" maxlength="16000" placeholder="Type a message"></textarea>' +
    '<button type="submit">Send</button></form></section>';
  host.style.setProperty("--c", color);
  host.style.setProperty("--t", textColor);
  var $ = function (sel) { return root.querySelector(sel); };
  var launcher = $(".launcher"), panel = $(".panel"), log = $(".log"), statusEl = $(".status");
  var announcer = $(".sr[aria-live]"), input = $("textarea"), form = $("form");
  var title = cfg.title || "Chat";
  $(".title").textContent = title;
  panel.setAttribute("aria-label", title);
  if (pageMode) {
    launcher.hidden = true;
    $(".close").hidden = true;
    panel.classList.add("page");
  }

  function setStatus(text) { statusEl.textContent = text || ""; }

  function bubble(role, text) {
    var el = document.createElement("div");
    el.className = "msg " + role;
    el.textContent = text;
    log.appendChild(el);
    log.scrollTop = log.scrollHeight;
    return el;
  }

  function reply(id) {
    var r = replies[id];
    if (!r) {
      r = replies[id] = { el: bubble("assistant", ""), text: "", done: false };
      r.el.setAttribute("data-reply-id", id);
      r.el.classList.add("typing");
      r.el.setAttribute("aria-busy", "true");
    }
    return r;
  }

  function render(r) {
    r.el.textContent = "";
    r.el.appendChild(markdown(r.text));
    log.scrollTop = log.scrollHeight;
  }

  // ---- Markdown: paragraphs, lists, code, emphasis and links, built as DOM nodes from text (never as
  // HTML), so markup in a reply shows as text; links only to http(s) and mailto. An unclosed code fence
  // (a reply still streaming) renders as a code block so far. ----
  function node(tag, parent, text) {
    var el = document.createElement(tag);
    if (text != null) el.textContent = text;
    if (parent) parent.appendChild(el);
    return el;
  }

  function safeHref(href) {
    try {
      var u = new URL(href);
      return /^(https?|mailto):$/.test(u.protocol) ? u.href : null;
    } catch (e) { return null; }
  }

  var INLINE = /(`+)([^`][\s\S]*?)\1|\*\*(?=\S)([\s\S]*?\S)\*\*|\b__(?=\S)([\s\S]*?\S)__\b|\*(?=\S)([^*]*?\S)\*|\b_(?=\S)([^_]*?\S)_\b|\[([^\]\n]+)\]\(([^()\s]+)\)/g;

  function inline(text, parent) {
    var re = new RegExp(INLINE.source, "g"), at = 0, m;
    while ((m = re.exec(text))) {
      if (m.index > at) parent.appendChild(document.createTextNode(text.slice(at, m.index)));
      at = re.lastIndex;
      if (m[1]) node("code", parent, m[2]);
      else if (m[3] || m[4]) inline(m[3] || m[4], node("strong", parent));
      else if (m[5] || m[6]) inline(m[5] || m[6], node("em", parent));
      else {
        var href = safeHref(m[8]);
        if (!href) { parent.appendChild(document.createTextNode(m[7])); continue; }
        var a = node("a", parent);
        a.href = href;
        a.target = "_blank";
        a.rel = "noopener noreferrer nofollow";
        inline(m[7], a);
      }
    }
    if (at < text.length) parent.appendChild(document.createTextNode(text.slice(at)));
  }

  var ITEM = /^\s{0,3}(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/;

  function markdown(text) {
    var out = document.createDocumentFragment(), lines = text.split(/\r?\n/), i = 0, para = [], list = null;
    function flush() {
      if (para.length) inline(para.join("\n"), node("p", out));
      para = [];
    }
    while (i < lines.length) {
      var line = lines[i], fence = /^\s{0,3}(```+|~~~+)/.exec(line), item = ITEM.exec(line);
      if (fence) {
        flush(); list = null;
        var code = [];
        for (i++; i < lines.length && lines[i].trim().indexOf(fence[1]) !== 0; i++) code.push(lines[i]);
        i++;
        node("code", node("pre", out), code.join("\n"));
        continue;
      }
      if (item) {
        flush();
        var tag = item[1] ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = node(tag, out);
          if (item[2] && item[2] !== "1") list.start = Number(item[2]);
        }
        inline(item[3], node("li", list));
      } else if (!line.trim()) {
        flush(); list = null;
      } else if (/^\s{0,3}#{1,6}\s/.test(line)) {
        flush(); list = null;
        inline(line.replace(/^\s*#+\s*/, ""), node("strong", node("p", out)));
      } else if (list && /^\s+\S/.test(line)) {
        var last = list.lastChild;
        last.appendChild(document.createTextNode("\n"));
        inline(line.trim(), last);
      } else {
        list = null;
        para.push(line);
      }
      i++;
    }
    flush();
    return out;
  }

  function finish(id, text, failed) {
    var r = reply(id);
    if (r.done) return;
    r.done = true;
    if (text != null) r.text = text;
    r.el.classList.remove("typing");
    r.el.removeAttribute("aria-busy");
    if (failed) {
      r.el.classList.add("failed");
      r.text = r.text || "Sorry, the reply failed. Please try again.";
    }
    render(r);
    announcer.textContent = r.text; // read the whole reply once, not every delta
  }

  // ---- HTTP ----
  function call(method, path, body) {
    var headers = { "Content-Type": "application/json" };
    if (session) headers.Authorization = "Bearer " + session.token;
    return fetch(api + path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined })
      .then(function (res) {
        return res.text().then(function (t) {
          var data = t ? JSON.parse(t) : {};
          if (!res.ok) {
            var err = new Error((data.error && data.error.message) || res.statusText);
            err.status = res.status;
            err.code = data.error && data.error.code;
            throw err;
          }
          return data;
        });
      });
  }

  function openSession() {
    var stored = null;
    try { stored = localStorage.getItem(storageKey); } catch (e) { /* storage blocked: a new visitor each time */ }
    session = null;
    return call("POST", "/api/widget/" + encodeURIComponent(key) + "/sessions", stored ? { resume_token: stored } : {})
      .then(function (s) {
        try { localStorage.setItem(storageKey, s.resume_token); } catch (e) { /* ignore */ }
        session = { token: s.session_token, dialogId: s.dialog_id, greeting: s.greeting };
        return call("GET", "/api/dialogs/" + s.dialog_id + "/messages?limit=200");
      })
      .then(function (page) {
        page.items.forEach(showMessage);
        var greeting = cfg.greeting || session.greeting; // the page's own, else the assistant's
        if (!log.childNodes.length && greeting) bubble("assistant", greeting);
        connect();
      });
  }

  function showMessage(m) {
    if (m.role === "user") {
      if (!messages[m.id]) { messages[m.id] = 1; bubble("user", m.content); }
    } else if (TERMINAL[m.status]) {
      finish(m.id, m.content, m.status === "failed");
    } else {
      reply(m.id);
      watch(m.id);
    }
  }

  // ---- Live events over the WebSocket, resumed with last_event_id after a drop ----
  function newer(id) {
    if (lastEventId === null) return true;
    var a = id.split("-"), b = lastEventId.split("-");
    var ams = Number(a[0]), bms = Number(b[0]);
    return ams > bms || (ams === bms && Number(a[1] || 0) > Number(b[1] || 0));
  }

  function connect() {
    if (stopped || polling || !session) return;
    if (!window.WebSocket) return startPolling();
    // The token goes in the first frame, never in the URL, which servers and proxies write to their logs.
    var url = api.replace(/^http/, "ws") + "/api/ws";
    var ws;
    try { ws = new WebSocket(url); } catch (e) { return onDrop(); }
    socket = ws;
    ws.onopen = function () {
      ws.send(JSON.stringify({ type: "auth", token: session.token }));
      // Until an event has been seen, "0" replays what is retained; finished replies ignore it.
      ws.send(JSON.stringify({ type: "subscribe", topic: "dialog:" + session.dialogId, last_event_id: lastEventId || "0" }));
    };
    ws.onmessage = function (msg) {
      var frame;
      try { frame = JSON.parse(msg.data); } catch (e) { return; }
      if (frame.type === "subscribed") { socketOpen = true; wsFailures = 0; setStatus(""); return; }
      if (frame.type === "error") { if (frame.code === "not_found") ws.close(); return; }
      if (!frame.id || !newer(frame.id)) return; // at-least-once delivery: a repeat changes nothing
      lastEventId = frame.id;
      apply(frame.type, frame.data || {});
    };
    ws.onclose = function (ev) {
      if (socket !== ws) return;
      socket = null;
      // The session's token expired or was revoked (4001 while open, 4401 on connecting): a new session.
      if (ev.code === 4001 || (ev.code === 4401 && /^token_expired/.test(ev.reason))) return reopen();
      onDrop();
    };
  }

  function onDrop() {
    var wasOpen = socketOpen;
    socketOpen = false;
    if (stopped) return;
    if (!wasOpen) wsFailures += 1;
    // Sockets blocked (proxy, firewall): poll pending replies instead.
    if (wsFailures >= 3) return startPolling();
    setStatus(wasOpen ? "Reconnecting\u2026" : "");
    setTimeout(connect, Math.min(8000, 300 * Math.pow(2, wsFailures)));
  }

  function reopen() {
    openSession().catch(showError);
  }

  function apply(type, d) {
    if (type === "message.created") {
      if (d.role === "user") showMessage(d);
    } else if (type === "reply.started") {
      reply(d.reply_id);
    } else if (type === "reply.delta") {
      var r = reply(d.reply_id);
      if (r.done) return;
      r.text = d.reset ? d.text : r.text + d.text;
      // One Markdown render per frame, however many deltas arrive in it.
      if (!r.frame) r.frame = requestAnimationFrame(function () { r.frame = 0; if (!r.done) render(r); });
    } else if (type === "reply.completed" || type === "reply.cancelled") {
      finish(d.reply_id, d.content, false);
    } else if (type === "reply.failed") {
      finish(d.reply_id, null, true);
    }
  }

  // ---- Polling fallback ----
  function startPolling() {
    if (polling) return;
    polling = true;
    setStatus("");
    Object.keys(replies).forEach(function (id) { if (!replies[id].done) watch(id); });
  }

  function watch(id) {
    if (!polling) return;
    var delay = 500;
    (function poll() {
      if (stopped || replies[id].done) return;
      call("GET", "/api/messages/" + id).then(function (m) {
        if (TERMINAL[m.status]) return finish(id, m.content, m.status === "failed");
        setTimeout(poll, delay);
      }, function () { delay = Math.min(delay * 2, 8000); setTimeout(poll, delay); });
    })();
  }

  // ---- Sending ----
  function send(text) {
    setStatus("");
    return call("POST", "/api/dialogs/" + session.dialogId + "/messages", { content: text }).then(function (res) {
      if (!messages[res.message.id]) { messages[res.message.id] = 1; bubble("user", text); }
      // No reply is queued while an operator holds the dialog; their answers arrive as events.
      if (!res.reply) return;
      reply(res.reply.id);
      watch(res.reply.id);
    });
  }

  function showError(err) {
    if (err.status === 403) setStatus("This chat is not available on this site.");
    else if (err.status === 429) setStatus("Too many messages. Please wait a moment.");
    else if (err.status === 402) setStatus("The assistant is unavailable right now.");
    else setStatus("Something went wrong. Please try again.");
  }

  var started = null;
  function start() {
    if (!started) started = openSession().catch(function (err) { started = null; showError(err); });
    return started;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    start().then(function () {
      if (!session) return;
      input.value = "";
      return send(text).catch(function (err) {
        if (err.code === "token_expired") return openSession().then(function () { return send(text); });
        input.value = text;
        throw err;
      });
    }).catch(showError);
  });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });

  function setOpen(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    if (open) { start(); input.focus(); } else { launcher.focus(); }
  }
  launcher.addEventListener("click", function () { setOpen(panel.hidden); });
  $(".close").addEventListener("click", function () { setOpen(false); });
  panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape" && !pageMode) setOpen(false); });

  function mount() {
    document.body.appendChild(host);
    if (pageMode) { panel.hidden = false; start(); input.focus(); }
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
  window.addEventListener("pagehide", function () { stopped = true; if (socket) socket.close(); });
})();
