#!/usr/bin/env python3
"""A ringserve client in Python: a two-turn conversation over one session, then embeddings.

Turn 1 sends the whole prompt; turn 2 appends to the session, so the worker reuses the
KV cache of turn 1 (usage.cached_tokens > 0) and checks, through expected_history_tokens,
that it still holds the history this client saw. Last, Embed returns both turns' inputs
as unit vectors, whose dot product is their cosine similarity. --adapter runs all of it
with one of the server's LoRA adapters.

Needs python3-grpcio and python3-protobuf (Debian) and the generated modules, which the
build writes to <build>/python (target ringserve_python_proto):

    PYTHONPATH=build/python python3 deploy/python/ringserve_client.py --target 127.0.0.1:50051

Against a router that serves TLS and requires a token (README, "Security"):

    ... ringserve_client.py --target router:50050 --tls-ca ca.pem \
        [--tls-cert client.pem --tls-key client.key] --token "$(cat token)"
"""
import argparse
import os
import sys

import grpc

from ringserve.v1 import inference_pb2, inference_pb2_grpc


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def open_channel(args):
    """A plaintext channel, or a TLS one when any --tls-* file is given (the client
    certificate for routers that require one)."""
    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return grpc.insecure_channel(args.target)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("--tls-cert and --tls-key go together")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read_file(args.tls_ca) if args.tls_ca else None,
        private_key=read_file(args.tls_key) if args.tls_key else None,
        certificate_chain=read_file(args.tls_cert) if args.tls_cert else None)
    options = [("grpc.ssl_target_name_override", args.tls_server_name)] if args.tls_server_name \
        else []
    return grpc.secure_channel(args.target, credentials, options=options)


def generate(stub, request, timeout_s, metadata=()):
    """Streams one Generate call, printing text as it arrives; returns the final message."""
    final = None
    call = stub.Generate(request, timeout=timeout_s, metadata=metadata)
    for response in call:
        if response.reasoning:  # a thinking model's thought, apart from its answer
            sys.stderr.write(response.reasoning)
        sys.stdout.write(response.text)
        for tool_call in response.tool_calls:  # chat requests that offered tools
            sys.stdout.write(f"\n[call {tool_call.id}] {tool_call.name} "
                             f"{tool_call.arguments.decode()}\n")
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
    parser.add_argument("--adapter", default="",
                        help="a LoRA adapter the server serves (GetModelInfo's adapters)")
    parser.add_argument("--timeout-s", type=float, default=60)
    parser.add_argument("--tls-ca", help="PEM CA that signed the server's certificate: use TLS")
    parser.add_argument("--tls-cert", help="PEM client certificate (servers requiring mTLS)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-server-name", help="name the server's certificate carries")
    parser.add_argument("--token", default=os.environ.get("RINGSERVE_TOKEN", ""),
                        help="bearer token (default: the env RINGSERVE_TOKEN)")
    args = parser.parse_args()
    # Plain metadata rather than call credentials, which gRPC sends over TLS only.
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []

    with open_channel(args) as channel:
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
                session_id=args.session, sampling=sampling, stop=stop, adapter=args.adapter,
                **inputs[0]),
                args.timeout_s, metadata)
            print_usage(1, first, worker)
            second, worker = generate(stub, inference_pb2.GenerateRequest(
                session_id=args.session, append=True,
                expected_history_tokens=first.history_tokens, sampling=sampling, stop=stop,
                adapter=args.adapter, **inputs[1]), args.timeout_s, metadata)
            print_usage(2, second, worker)
            embedded = stub.Embed(inference_pb2.EmbedRequest(
                inputs=[inference_pb2.EmbedInput(**i) for i in inputs], adapter=args.adapter),
                timeout=args.timeout_s, metadata=metadata)
            a, b = (list(e.values) for e in embedded.embeddings)
            print(f"embeddings: {len(embedded.embeddings)} of {len(a)} values, "
                  f"cosine similarity {sum(x * y for x, y in zip(a, b)):.4f}")
        except grpc.RpcError as error:
            print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
