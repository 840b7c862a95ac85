// Row buttons (acknowledge, silence, resolve, expire) on pages that redraw their tables on
// every refresh tick. One listener on the document reads the clicked button's
// data-action / data-target and hands them to the page's store (data-store), so a click
// is never lost when an answer replaces the table under the pointer.
document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button[data-action]");
    const api = window.dash_clientside;
    if (!button || !api || typeof api.set_props !== "function") {
        return;
    }
    api.set_props(button.dataset.store, {
        data: {type: button.dataset.action, index: Number(button.dataset.target), at: Date.now()},
    });
});
