"""``omniembed push DIR ORG/REPO``: upload a saved model (with its model card) to the Hugging Face Hub, so that
``omniembed.load("hf:ORG/REPO")`` reads it anywhere."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="a checkpoint directory written by model.save / omniembed train")
    parser.add_argument("repo", help="the Hub repository, ORG/REPO (created if it does not exist)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", default=None, help="branch to push to (created if needed; default: main)")
    parser.add_argument("--message", default=None, help="commit message")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or `hf auth login`)")


def run(args: argparse.Namespace) -> int:
    from ..publish import push_directory

    url = push_directory(args.directory, args.repo, private=args.private or None, revision=args.revision,
                         commit_message=args.message, token=args.token)
    print(f"pushed {args.directory} → {args.repo}: {url}\nload it with omniembed.load(\"hf:{args.repo}\")")
    return 0
