"""`bench recommend`: a user's top-k unseen movies from a logged MLflow model."""

from __future__ import annotations

from bench.cli.common import add_data_flags, add_tracking_flag, command_parser


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "recommend",
        __doc__,
        "bench recommend --model models:/recsys-mf-ml-100k@champion --user 196 -k 5",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="MLflow model URI: a champion such as models:/recsys-mf-ml-100k@champion, a sweep "
        "trial's models:/MODEL_ID (its tag rating_model_uri), or a benchmark fold's run "
        "runs:/RUN_ID/model",
    )
    parser.add_argument("--user", type=int, required=True, help="MovieLens user id")
    parser.add_argument("-k", type=int, default=10, help="how many movies (default %(default)s)")
    add_data_flags(parser)
    add_tracking_flag(parser)
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error(f"-k {args.k}: how many movies to recommend must be at least 1")
    from bench.data import load_dataset
    from bench.tracking.recommend import load_model, recommend

    data = load_dataset(args.dataset, args.data_dir)
    model = load_model(args.model, args.tracking_uri)
    table = recommend(model, data, args.user, args.k)
    print(f"top {args.k} unseen movies for user {args.user}:")
    print(table.to_string(index=False, float_format="{:.2f}".format))
    return 0
