"""`paperbot run`: poll every source on its own interval until SIGTERM or Ctrl-C.

APScheduler 3 runs one job per source: first at start-up, then every `every` plus a little jitter (so sources
sharing a host do not fire in lockstep). A job never overlaps itself (max_instances=1); polls missed while the
machine slept or a poll ran long are merged into one (coalesce) and run however late (misfire_grace_time=None),
because a poll is idempotent and cheap when nothing changed. Each source has a worker thread of its own, so a
slow source (each HTTP attempt is cut at `[fetch] timeout`, but a poll may retry) never delays the others.
Only one daemon may own a state folder: it holds state_dir/paperbot.lock for its whole life. After each poll
the "after poll" hooks run (publishing plugs in there). The main loop writes a heartbeat to the database every
few seconds (bot/web/health.py), which `GET /healthz` reads. Stopping waits a few seconds for polls in flight; one
still stuck in the network is abandoned, which is safe because a poll records everything in one transaction or
nothing.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot import locks
from bot.config import Config, SourceConfig
from bot.publish.pipeline import next_due
from bot.sources.poll import PollOptions, poll_source
from bot.store import Store
from bot.track.digest_cache import Sections
from bot.web import health
from bot.web.thread import WebThread

log = logging.getLogger(__name__)

AfterPoll = Callable[[Config, Store, datetime], None]
STOP_GRACE = 6.0  # seconds to let polls in flight finish after a stop signal (the promise is 10 s in all)
WAKE_JOB = "publish-wake"
ENRICH_JOB = "arxiv-enrich"


def housekeeping(cfg: Config, store: Store, now: datetime) -> None:
    """Issue #24: pending subscribers whose last confirmation link expired over `[web] pending_ttl` ago go,
    with their confirmations (addresses typed into the form by others do not pile up)."""
    from bot.channels.email import subscribers

    subscribers.purge_pending(store, now=now, keep=timedelta(seconds=cfg.web.pending_ttl))


def after_poll_hooks(cfg: Config, stop: threading.Event | None = None) -> list[AfterPoll]:
    """What runs after every poll, with the poll's store and clock: publishing each week that became ready
    (ending its sending once `stop` is set), alerts, then housekeeping."""
    from bot.ops.alerts import after_poll as alerts
    from bot.publish.pipeline import after_poll, after_poll_until

    publish = after_poll if stop is None else after_poll_until(stop)
    return [publish, alerts, housekeeping]  # alerts after publishing, so they see what this round sent


def jitter(every_seconds: float) -> float:
    """Up to 10% of the interval, at most a minute."""
    return min(every_seconds * 0.1, 60.0)


class Daemon:
    def __init__(self, cfg: Config, *, options: PollOptions | None = None, hooks: list[AfterPoll] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.cfg = cfg
        self.options = options or PollOptions.from_config(cfg)
        self.stop = threading.Event()
        self.hooks = after_poll_hooks(cfg, self.stop) if hooks is None else hooks
        self.clock = clock
        self._running = 0
        self._doing: dict[int, str] = {}  # thread -> what its job is doing now (said if stopping leaves it)
        self._idle = threading.Condition()
        # Polls fetch side by side, but their writes and the hooks take turns: the hooks' own transactions
        # then never meet a poll's commit between their reads and their writes ("database is locked").
        self._writes = threading.Lock()
        self._sections: dict[str, dict[str, Sections]] = {src.name: {} for src in cfg.sources}  # issue #28
        self._sched: BackgroundScheduler | None = None

    def _run_hooks(self, store: Store, now: datetime, after: str) -> None:
        for hook in self.hooks:
            try:
                with self._writes:
                    hook(self.cfg, store, now)
            except Exception:
                log.exception("after-poll hook %s failed (%s)", getattr(hook, "__name__", hook), after)
        self._schedule_wake(store)

    def _schedule_wake(self, store: Store) -> None:
        """Come back when a channel's rate-limited-until (a 429's reset, the daily budget) ends: one job at
        that instant, replaced by each round, rather than polling the channel every second."""
        if self._sched is None or self.stop.is_set():
            return
        try:
            now = self.clock()
            when = next_due(self.cfg, store, now)
        except Exception:
            log.exception("cannot read when the channels may send again; publishing resumes after the next poll")
            return
        if when is None:
            return
        try:
            run_date = datetime.now(UTC) + (when - now) + timedelta(seconds=1)  # the scheduler keeps real time
            self._sched.add_job(self.wake_job, DateTrigger(run_date=run_date, timezone=UTC),
                                id=WAKE_JOB, name="publish when a channel may send again", replace_existing=True,
                                misfire_grace_time=None, coalesce=True, max_instances=1)
        except SchedulerNotRunningError:  # stopping: the next start schedules it again from the database
            return
        log.info("publishing again at %s, when a channel may send again", when.isoformat(timespec="seconds"))

    @contextmanager
    def _job(self, failed: str) -> Iterator[None]:
        """Count a job as running (stopping waits for it), and log, never raise, what it fails with."""
        with self._idle:
            self._running += 1
        try:
            yield
        except Exception:
            log.exception("%s", failed)
        finally:
            with self._idle:
                self._running -= 1
                self._doing.pop(threading.get_ident(), None)
                self._idle.notify_all()

    def _now_doing(self, what: str) -> None:
        with self._idle:
            self._doing[threading.get_ident()] = what

    def wake_job(self) -> None:
        """Publish what waited for a channel's rate-limited-until or send window. Never raises."""
        if self.stop.is_set():
            return
        with self._job("publishing after a channel's wait failed; it runs again after the next poll"):
            store = Store.open(self.cfg.db_path)
            self._now_doing("publishing after a channel's wait")
            try:
                self._run_hooks(store, self.clock(), "after a channel's wait")
            finally:
                store.close()

    def poll_job(self, src: SourceConfig) -> None:
        """One scheduled poll of `src`, then the hooks. Never raises: the scheduler must keep going."""
        if self.stop.is_set():
            return
        with self._job(f"{src.name}: poll job failed; it runs again at its next interval"):
            store = Store.open(self.cfg.db_path)
            try:
                now = self.clock()
                self._now_doing(f"a poll of {src.name}")
                poll_source(store, self.cfg, src, now, options=self.options, stop=self.stop,
                            write_lock=self._writes, sections=self._sections.setdefault(src.name, {}))
                self._now_doing(f"publishing after the poll of {src.name}")
                self._run_hooks(store, now, f"after polling {src.name}")
            finally:
                store.close()
        self._schedule_enrich()

    def _schedule_enrich(self) -> None:
        """Enrichment from arXiv (#32) after a poll: on its own worker, after publishing, so nothing a channel
        sends ever waits on arXiv."""
        if self._sched is None or self.stop.is_set() or not self.cfg.arxiv.enabled:
            return
        try:
            self._sched.add_job(self.enrich_job, DateTrigger(run_date=datetime.now(UTC), timezone=UTC),
                                id=ENRICH_JOB, name="enrich papers from arXiv", executor="arxiv",
                                replace_existing=True, misfire_grace_time=None, coalesce=True, max_instances=1)
        except SchedulerNotRunningError:
            return

    def enrich_job(self) -> None:
        """One round of enrichment. Never raises; a failure is recorded and the next poll's round asks again."""
        if self.stop.is_set():
            return
        from bot.publish.enrichment import enrich_round

        with self._job("enriching papers from arXiv failed; it runs again after the next poll"):
            store = Store.open(self.cfg.db_path)
            try:
                enrich_round(self.cfg, store, self.clock, stop=self.stop, write_lock=self._writes)
            finally:
                store.close()

    def _scheduler(self) -> BackgroundScheduler:
        # A worker per source: a job never overlaps itself, so a source that is slow (a server dripping bytes,
        # retries, a long git fetch) only ever holds its own worker, never the turn of another source.
        workers = max(1, len(self.cfg.sources))
        sched = BackgroundScheduler(timezone=UTC, executors={"default": ThreadPoolExecutor(workers),
                                                             "arxiv": ThreadPoolExecutor(1)})
        start = datetime.now(UTC)
        for src in self.cfg.sources:
            every = src.every.total_seconds()
            sched.add_job(self.poll_job, IntervalTrigger(seconds=every, jitter=jitter(every), timezone=UTC),
                          args=[src], id=src.name, name=f"poll {src.name}", max_instances=1, coalesce=True,
                          misfire_grace_time=None, next_run_time=start)
        return sched

    def run(self) -> bool:
        """Run until stopped (a signal, or `stop` set by the caller). True if every poll had finished.

        Raises locks.LockBusy if another daemon owns the state folder.
        """
        lock = locks.acquire(self.cfg.state_dir / "paperbot.lock")
        previous = self._install_signals()
        web = WebThread(self.cfg)  # unsubscribe links and editions are answered while the daemon runs
        heart: health.Heartbeat | None = None
        try:
            Store.open(self.cfg.db_path).close()  # create and migrate before the first job, loudly if it fails
            heart = health.Heartbeat(self.cfg.db_path)  # /healthz: this loop still turns (issue #15)
            heart.start(datetime.now(UTC))
            web.start()
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
            sched = self._sched = self._scheduler()
            sched.start()
            store = Store.open(self.cfg.db_path)
            try:
                self._schedule_wake(store)  # a wait recorded before a restart is honoured, and ends, all the same
            finally:
                store.close()
            log.info("paperbot running: %d source(s) (%s); state in %s", len(self.cfg.sources),
                     ", ".join(f"{s.name} every {s.every}" for s in self.cfg.sources), self.cfg.state_dir)
            every = health.beat_every(self.cfg.health)
            next_beat = time.monotonic() + every
            while not self.stop.wait(min(1.0, every)):
                if time.monotonic() >= next_beat:
                    heart.beat(datetime.now(UTC))
                    next_beat = time.monotonic() + every
            log.info("stopping")
            sched.shutdown(wait=False)
            with self._idle:
                clean = self._idle.wait_for(lambda: self._running == 0, timeout=STOP_GRACE)
            if not clean:  # issue #25: say what was left, and that nothing recorded is undone
                with self._idle:
                    doing = sorted(self._doing.values())
                log.warning("stopped with %s still in flight after %.0fs; %s", ", ".join(doing) or "a job",
                            STOP_GRACE, "every message already sent stays recorded as sent, and what was in flight "
                            "is finished at the next start (a poll not recorded is simply polled again)")
            return clean
        finally:
            if heart is not None:
                heart.stopped(datetime.now(UTC))
                heart.close()
            web.stop()
            self._restore_signals(previous)
            locks.release(lock)

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, _frame: object) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stop.set()

        return {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    @staticmethod
    def _restore_signals(previous: dict) -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)
