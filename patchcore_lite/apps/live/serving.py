"""Live demo serving: the Voila options and kernel manager of `make present` (instant reloads).

Voila pre-heats one kernel (it runs the notebook before anyone asks) and, with `fill_delay=0`,
starts the next one as soon as a page takes it: every load finds a warm kernel. A closed page
frees its kernel here, on the server: a browser that closes a tab abruptly sends no unload
event, so the Jupyter server's idle culler (`cull_idle_timeout`, `cull_interval`, connected
pages never culled) shuts down kernels whose page is gone. This manager adds one rule to it: a
kernel that just left the pool may be idle since it was pre-heated, long ago, while its page is
still loading, so it is culled only after `page_grace` seconds without a page (a plain HTTP GET,
a link checker, is such a load: its kernel goes after the grace).

    voila notebooks/06_live_demo.ipynb $(VOILA_OPTS)     # see VOILA_OPTS below and the Makefile
"""

from __future__ import annotations

import time

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Float

WEBSOCKET_MAX = 64 * 2**20  # bytes per websocket message (tornado's default: 10 MiB). Uploads
# come in pieces of 1 MiB anyway (upload.js); this keeps any other large message (a widget state
# with many images) from being dropped.
# What `make present` passes to voila (the Makefile spells the same list; tests compare them).
VOILA_OPTS = ("--no-browser", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
              "--TagRemovePreprocessor.remove_cell_tags=lesson", "--preheat_kernel=True",
              "--pool_size=1", "--VoilaKernelManager.fill_delay=0",
              "--VoilaConfiguration.multi_kernel_manager_class="
              "patchcore_lite.apps.live.serving.LiveKernelManager",
              "--MappingKernelManager.cull_idle_timeout=4",
              "--MappingKernelManager.cull_interval=1",
              "--MappingKernelManager.cull_connected=False",
              f'--Voila.tornado_settings={{"websocket_max_message_size":{WEBSOCKET_MAX}}}')


class LiveKernelManager(AsyncMappingKernelManager):
    """The server's kernel manager with a grace period for pages that are still loading."""

    page_grace = Float(20.0, config=True,
                       help="Seconds a kernel without a page is kept after it left the pool")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._last_check: dict[str, float] = {}  # kernel id -> when the culler last asked us
        self._out_since: dict[str, float] = {}  # kernel id -> first seen out of the pool
        self._had_page: set[str] = set()

    def notify_connect(self, kernel_id):
        """A page connected: from now on only its idle time counts."""
        self._had_page.add(kernel_id)
        super().notify_connect(kernel_id)

    async def cull_kernel_if_idle(self, kernel_id):
        """Cull as the server does, except a kernel whose page has not connected yet (grace).
        Voila answers for pooled kernels itself: a kernel we were not asked about in the last
        round was in the pool, so its grace starts now."""
        now = time.monotonic()
        last = self._last_check.get(kernel_id)
        self._last_check[kernel_id] = now
        if last is None or now - last > 1.5 * self.cull_interval + 1:
            self._out_since[kernel_id] = now
        for gone in set(self._last_check) - set(self._kernels):  # forget shut-down kernels
            self._last_check.pop(gone)
            self._out_since.pop(gone, None)
            self._had_page.discard(gone)
        if kernel_id not in self._had_page and now - self._out_since[kernel_id] < self.page_grace:
            return None
        return await super().cull_kernel_if_idle(kernel_id)
