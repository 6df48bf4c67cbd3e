// Duijie's own script: the cascading region pickers. Everything else is htmx attributes.
"use strict";
document.addEventListener("change", async (event) => {
  const select = event.target;
  if (!(select instanceof HTMLSelectElement) || !select.closest(".region-picker")) return;
  const picker = select.closest(".region-picker");
  const selects = Array.from(picker.querySelectorAll("select[data-level]"));
  const index = selects.indexOf(select);
  // The deepest level with a choice is the region the form sends.
  const code = select.value || (index > 0 ? selects[index - 1].value : "");
  picker.querySelector("input[type=hidden]").value = code;
  for (const deeper of selects.slice(index + 1)) deeper.innerHTML = "";
  const next = selects[index + 1];
  if (next && select.value) {
    const response = await fetch(`/regions?parent=${encodeURIComponent(select.value)}`, { credentials: "same-origin" });
    if (response.ok) next.innerHTML = await response.text();
  }
  picker.dispatchEvent(new Event("region-change", { bubbles: true }));
});
