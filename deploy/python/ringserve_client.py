#!/usr/bin/env python3
"""A ringserve client in Python: a two-turn conversation over one session.

Turn 1 sends the whole prompt; turn 2 appends to the session, so the worker reuses the
KV cache of turn 1 (usage.cached_tokens > 0) and checks, through expected_history_tokens,
that it still holds the history this client saw.

Needs python3-grpcio and python3-protobuf (Debian) and the generated modules, which the
build writes to <build>/python (target ringserve_python_proto):

    PYTHONPATH=build/python python3 deploy/python/ringserve_client.py --target 127.0.0.1:50051
"""
import argparse
import sys

import grpc

from ringserve.v1 import inference_pb2, inference_pb2_grpc


def generate(stub, request, timeout_s):
    """Streams one Generate call, printing text as it arrives; returns the final message."""
    final = None
    call = stub.Generate(request, timeout=timeout_s)
    for response in call:
        sys.stdout.write(response.text)
        sys.stdout.flush()
        if response.HasField("final"):
            final = response.final
    sys.stdout.write("\n")
    # The worker id travels in the final usage and in the x-ringserve-worker metadata.
    metadata = dict(call.trailing_metadata() or ())
    worker = final.usage.worker_id or metadata.get("x-ringserve-worker", "")
    return final, worker


def print_usage(turn, final, worker):
    usage = final.usage
    reason = inference_pb2.FinishReason.Name(final.finish_reason)
    print(f"turn {turn}: finish={reason} worker={worker} prompt_tokens={usage.prompt_tokens} "
          f"cached_tokens={usage.cached_tokens} completion_tokens={usage.completion_tokens} "
          f"history_tokens={final.history_tokens}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="router or worker HOST:PORT")
    parser.add_argument("--session", default="python-example")
    parser.add_argument("--text", default="The capital of France is")
    parser.add_argument("--follow-up", default=" And the capital of Italy is")
    parser.add_argument("--tokens", default="",
                        help="comma-separated token ids sent in both turns instead of text "
                             "(for a worker without a tokenizer, e.g. --dummy-weights)")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--timeout-s", type=float, default=60)
    args = parser.parse_args()

    with grpc.insecure_channel(args.target) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        sampling = inference_pb2.SamplingParams(temperature=0.0)
        stop = inference_pb2.StopCriteria(max_tokens=args.max_tokens)
        if args.tokens:
            ids = inference_pb2.TokenIds(ids=[int(t) for t in args.tokens.split(",")])
            inputs = [{"tokens": ids}, {"tokens": ids}]
        else:
            inputs = [{"text": args.text.encode()}, {"text": args.follow_up.encode()}]
        try:
            first, worker = generate(stub, inference_pb2.GenerateRequest(
                session_id=args.session, sampling=sampling, stop=stop, **inputs[0]),
                args.timeout_s)
            print_usage(1, first, worker)
            second, worker = generate(stub, inference_pb2.GenerateRequest(
                session_id=args.session, append=True,
                expected_history_tokens=first.history_tokens, sampling=sampling, stop=stop,
                **inputs[1]), args.timeout_s)
            print_usage(2, second, worker)
        except grpc.RpcError as error:
            print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
