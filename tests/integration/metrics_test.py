"""/metrics of real ringserve-worker and ringserve-router processes on loopback, as a
Prometheus scraper sees them: the text format parses, counters move by exactly what the
requests did, state gauges match Admin.GetStats, and scraping never disturbs serving.

usage: metrics_test.py BIN_DIR PROTO_DIR SHARED_DIR [unittest args]
"""
import sys
import tempfile
import threading
import unittest

import fleet

BIN_DIR, PROTO_DIR, SHARED_DIR = sys.argv[1:4]
fleet.import_grpc_or_skip()
fleet.generate_modules(PROTO_DIR, tempfile.mkdtemp(prefix="ringserve-py-"))

from ringserve.v1 import inference_pb2 as pb  # noqa: E402

free_port, fetch, scrape = fleet.free_port, fleet.fetch, fleet.scrape


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.worker_metrics, cls.router_metrics = free_port(), free_port()
        # With drafts: tokens are the same either way, and their counters get checked.
        cls.cluster = fleet.Cluster(BIN_DIR, SHARED_DIR, "m", 1,
                                    worker_extra=["--metrics-port", str(cls.worker_metrics),
                                                  "--speculate", "4"],
                                    router_extra=["--metrics-port", str(cls.router_metrics)])

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def run_requests(self, sessions, prompt, max_tokens):
        for session in sessions:
            r = fleet.generate_request(session, prompt, max_tokens)
            code, ids, _, _, details = fleet.stream(self.cluster.stub, r, 30)
            self.assertEqual(code, "OK", details)
            self.assertEqual(len(ids), max_tokens)

    def test_counters_move_by_what_the_requests_did(self):
        before_w, before_r = scrape(self.worker_metrics), scrape(self.router_metrics)
        self.run_requests([f"count{i}" for i in range(3)], [5, 6, 7, 8], 6)
        bad = fleet.generate_request("count-bad", [], 4)  # no prompt: INVALID_ARGUMENT
        code, _, _, _, _ = fleet.stream(self.cluster.stub, bad, 10)
        self.assertEqual(code, "INVALID_ARGUMENT")

        def delta(after, before, name, labels=""):
            return after.get((name, labels), 0) - before.get((name, labels), 0)

        ok = '{code="OK",method="Generate"}'
        invalid = '{code="INVALID_ARGUMENT",method="Generate"}'
        # The worker counts a request as its stream finishes, just after the client sees it.
        self.assertTrue(fleet.wait_until(lambda: delta(
            scrape(self.worker_metrics), before_w, "ringserve_worker_requests_total", ok) == 3, 5))
        w, r = scrape(self.worker_metrics), scrape(self.router_metrics)
        self.assertEqual(delta(w, before_w, "ringserve_worker_generated_tokens_total"), 18)
        self.assertEqual(delta(w, before_w, "ringserve_worker_prompt_tokens_total"), 12)
        self.assertEqual(delta(w, before_w, "ringserve_worker_time_to_first_token_seconds_count"), 3)
        self.assertGreaterEqual(delta(w, before_w, "ringserve_worker_step_seconds_count"), 6)
        self.assertEqual(delta(r, before_r, "ringserve_router_requests_total", ok), 3)
        self.assertEqual(delta(r, before_r, "ringserve_router_requests_total", invalid), 1)
        # The refused request sent no token, so it has no time to first token.
        self.assertEqual(delta(r, before_r, "ringserve_router_time_to_first_token_seconds_count"), 3)
        self.assertEqual(r[("ringserve_router_ring_healthy_workers", "")], 1)

    def test_scored_input_tokens_are_counted(self):
        before = scrape(self.worker_metrics)
        r = fleet.generate_request("", [5, 6, 7, 8, 9, 10], 2, prompt_logprobs=0)
        code, ids, _, _, details = fleet.stream(self.cluster.stub, r, 30)
        self.assertEqual(code, "OK", details)
        name = "ringserve_worker_scored_prompt_tokens_total"
        self.assertTrue(fleet.wait_until(
            lambda: scrape(self.worker_metrics).get((name, ""), 0) - before.get((name, ""), 0)
            == 5, 5))

    def test_a_repeated_response_format_is_found_among_the_compiled_grammars(self):
        lookups = "ringserve_worker_grammar_cache_lookups_total"
        before = scrape(self.worker_metrics)
        fmt = pb.ResponseFormat(regex=b"[a-z]{1,4}( [a-z]{1,4}){0,3} metrics")
        for _ in range(2):
            r = fleet.generate_request("", [5, 6, 7], 4, response_format=fmt)
            code, _, _, _, details = fleet.stream(self.cluster.stub, r, 30)
            self.assertEqual(code, "OK", details)
        w = scrape(self.worker_metrics)
        for result in ("miss", "hit"):
            key = (lookups, f'{{result="{result}"}}')
            self.assertEqual(w.get(key, 0) - before.get(key, 0), 1, result)
        self.assertGreaterEqual(w[("ringserve_worker_grammar_cache_entries", "")], 1)

    def test_speculative_drafts_are_counted_alike_in_metrics_and_stats(self):
        before = scrape(self.worker_metrics)
        self.run_requests(["drafts"], [1, 2, 3, 4], 48)
        stats = self.cluster.worker_stats(0)
        w = scrape(self.worker_metrics)
        drafts = w[("ringserve_worker_draft_tokens_total", "")]
        accepted = w[("ringserve_worker_accepted_draft_tokens_total", "")]
        self.assertEqual(drafts, stats.draft_tokens_total)
        self.assertEqual(accepted, stats.accepted_draft_tokens_total)
        # Its own tokens recur within 48 (how many drafts are right depends on the text).
        self.assertGreater(drafts - before.get(("ringserve_worker_draft_tokens_total", ""), 0), 0)
        self.assertLessEqual(accepted, drafts)

    def test_state_gauges_match_the_workers_own_stats(self):
        self.run_requests([f"gauge{i}" for i in range(4)], [9, 10, 11], 3)
        stats = self.cluster.worker_stats(0)
        w = scrape(self.worker_metrics)
        self.assertEqual(w[("ringserve_worker_sessions", "")], stats.sessions)
        self.assertGreaterEqual(stats.sessions, 4)
        self.assertEqual(w[("ringserve_worker_running_requests", "")], 0)
        self.assertEqual(w[("ringserve_worker_queue_depth", "")], 0)
        kv = {state: w[("ringserve_worker_kv_blocks", f'{{state="{state}"}}')]
              for state in ("used", "cached", "free")}
        self.assertEqual(sum(kv.values()), stats.kv_cache.blocks_total, kv)
        self.assertGreater(kv["used"] + kv["cached"], 0, "the sessions hold their blocks")

    def test_scrapes_under_load_are_all_answered_and_serving_goes_on(self):
        results = []

        def scraper(port):
            for _ in range(10):
                results.append(fetch(port)[0])

        threads = [threading.Thread(target=scraper, args=(port,))
                   for port in (self.worker_metrics, self.router_metrics) for _ in range(3)]
        for t in threads:
            t.start()
        self.run_requests([f"load{i}" for i in range(5)], [1, 2, 3], 8)
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 60)
        for port in (self.worker_metrics, self.router_metrics):
            self.assertEqual(fetch(port, "HEAD")[:2], (200, "text/plain; version=0.0.4; charset=utf-8"))
            self.assertEqual(fetch(port, "GET", "/")[0], 404)
            self.assertEqual(fetch(port, "POST")[0], 405)
        self.assertIsNone(self.cluster.workers[0].proc.poll(), "the worker died")
        self.assertIsNone(self.cluster.router.proc.poll(), "the router died")
        self.run_requests(["after"], [4, 5], 2)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[4:])
