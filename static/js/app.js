/* Switchboard dashboard: the little JavaScript that htmx does not do for us.
 *
 * 1. Live streams. Thread and playground pages receive "batches" of stream items (from the poller
 *    or from a reply). Each item has an id, a version and a time key: a new item is inserted in
 *    time order, a newer version (a tick turned blue) replaces the copy in the stream, an older or
 *    equal one is skipped.
 *    The reply box is never touched, so nothing being typed is lost.
 * 2. The reply box: Enter sends (Shift+Enter for a new line), it grows with its text, and it is
 *    cleared only once the server confirmed the message was stored.
 * 3. Prompt variables: buttons that insert {{variable}} where the cursor is.
 */
(function () {
  "use strict";

  function nearBottom(stream) {
    return stream.scrollHeight - stream.scrollTop - stream.clientHeight < 120;
  }

  function scrollToBottom(stream) {
    stream.scrollTop = stream.scrollHeight;
  }

  function mergeBatch(batch) {
    var stream = document.getElementById(batch.getAttribute("data-stream") || "stream");
    if (!stream) { batch.remove(); return; }
    var earlier = batch.getAttribute("data-stream-batch") === "earlier";
    var wasNearBottom = nearBottom(stream);
    var heightBefore = stream.scrollHeight;
    var added = false;
    Array.prototype.slice.call(batch.children).forEach(function (item) {
      if (!item.id || !item.hasAttribute("data-key")) { return; }
      // Only a copy already in the stream counts: another batch still waiting to be merged may
      // hold the same item, and finding that one instead let both copies into the stream.
      var existing = stream.querySelector(":scope > #" + CSS.escape(item.id));
      if (existing) {
        // Versions are ISO times: a late batch carrying an older copy (a tick not yet blue) loses.
        if (item.getAttribute("data-version") > existing.getAttribute("data-version")) {
          existing.replaceWith(item);
        }
        return;
      }
      var items = stream.querySelectorAll(":scope > [data-key]");
      var key = item.getAttribute("data-key");
      // Older than what this page loaded, while earlier messages are still behind a link: it
      // belongs to a part of the history that is not shown, so it is left out.
      if (!earlier && items.length && key < items[0].getAttribute("data-key") && stream.querySelector("[data-earlier-link]")) {
        return;
      }
      var before = null;
      for (var i = 0; i < items.length; i++) {
        if (items[i].getAttribute("data-key") > key) { before = items[i]; break; }
      }
      if (before) { stream.insertBefore(item, before); } else { stream.appendChild(item); }
      added = true;
    });
    batch.remove();
    if (!added) { return; }
    var empty = stream.querySelector("[data-stream-empty]");
    if (empty) { empty.remove(); }
    if (earlier) {
      stream.scrollTop += stream.scrollHeight - heightBefore; // keep the reader where they were
    } else if (wasNearBottom || batch.hasAttribute("data-own")) {
      scrollToBottom(stream);
    }
  }

  function mergeAll() {
    document.querySelectorAll("[data-stream-batch]").forEach(mergeBatch);
  }

  function autogrow(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight + 2, 192) + "px";
  }

  document.addEventListener("htmx:afterSettle", mergeAll);

  // The server answers a stored reply with the event "stream-sent": only then is the text cleared.
  document.addEventListener("stream-sent", function (event) {
    var form = event.target.closest ? event.target.closest("form") : null;
    if (!form) { return; }
    form.reset();
    form.querySelectorAll("textarea").forEach(function (t) { autogrow(t); t.focus(); });
  });

  // A photo or document attached to the reply: its name shows above the box, whose text becomes
  // the caption; Remove (or a sent reply, which resets the form) takes it off.
  function attachmentShow(form) {
    var input = form.querySelector("input[data-attach]");
    var box = form.querySelector("#attachment");
    var text = form.querySelector("textarea[data-caption-placeholder]");
    if (!input || !box) { return; }
    var file = input.files.length ? input.files[0] : null;
    box.hidden = !file;
    form.querySelector("#attachment-name").textContent = file ? file.name : "";
    if (text) {
      if (!text.hasAttribute("data-text-placeholder")) { text.setAttribute("data-text-placeholder", text.placeholder); }
      text.placeholder = file ? text.getAttribute("data-caption-placeholder") : text.getAttribute("data-text-placeholder");
    }
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("input[data-attach]")) { attachmentShow(event.target.form); }
  });
  document.addEventListener("reset", function (event) {
    var form = event.target;
    if (form.querySelector && form.querySelector("input[data-attach]")) { setTimeout(function () { attachmentShow(form); }, 0); }
  });
  document.addEventListener("click", function (event) {
    var remove = event.target.closest && event.target.closest("[data-attach-remove]");
    if (!remove) { return; }
    var form = remove.closest("form");
    form.querySelector("input[data-attach]").value = "";
    attachmentShow(form);
  });

  // Canned replies: "/" at the start of the reply box lists the organization's ready answers;
  // Enter or Tab (or a click) puts the first match, or the clicked one, in the box.
  function cannedMatches(field) {
    var data = document.getElementById(field.getAttribute("data-canned"));
    var typed = /^\/([\w-]*)$/.exec(field.value);
    if (!data || !typed) { return []; }
    return JSON.parse(data.textContent).filter(function (c) { return c.shortcut.indexOf(typed[1].toLowerCase()) === 0; });
  }
  function cannedShow(field) {
    var list = document.getElementById("canned-list");
    if (!list) { return; }
    var matches = cannedMatches(field);
    list.innerHTML = "";
    matches.forEach(function (c) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.setAttribute("data-canned-text", c.text);
      var name = document.createElement("strong");
      name.textContent = "/" + c.shortcut + " ";
      button.appendChild(name);
      button.appendChild(document.createTextNode(c.text.length > 90 ? c.text.slice(0, 90) + "…" : c.text));
      item.appendChild(button);
      list.appendChild(item);
    });
    list.hidden = matches.length === 0;
  }
  function cannedUse(field, text) {
    field.value = text;
    field.focus();
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }
  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-canned]")) { cannedShow(event.target); }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-canned-text]") : null;
    var field = document.querySelector("textarea[data-canned]");
    if (button && field) { cannedUse(field, button.getAttribute("data-canned-text")); }
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target.matches && target.matches("textarea[data-canned]") && (event.key === "Enter" || event.key === "Tab")) {
      var matches = cannedMatches(target);
      if (matches.length) { event.preventDefault(); cannedUse(target, matches[0].text); return; }
    }
    if (!target.matches || !target.matches("textarea[data-enter-sends]")) { return; }
    var touch = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && (!touch || event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      var attached = target.form && target.form.querySelector("input[data-attach]");
      if ((target.value.trim() || (attached && attached.files.length)) && target.form) { target.form.requestSubmit(); }
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-autogrow]")) { autogrow(event.target); }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-insert]") : null;
    if (!button) { return; }
    var field = document.getElementById(button.getAttribute("data-for"));
    if (!field) { return; }
    var text = button.getAttribute("data-insert");
    var start = field.selectionStart || 0, end = field.selectionEnd || 0;
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    field.focus();
    field.selectionStart = field.selectionEnd = start + text.length;
    field.dispatchEvent(new Event("input", { bubbles: true }));
  });

  // Close an open menu when clicking elsewhere or pressing Escape.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) { menu.removeAttribute("open"); }
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
      var summary = menu.querySelector("summary");
      if (summary) { summary.focus(); }
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    var stream = document.getElementById("stream");
    if (stream) { scrollToBottom(stream); }
    document.querySelectorAll("textarea[data-autogrow]").forEach(autogrow);
  });
})();
