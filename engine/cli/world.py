"""`sam3-engine world ...`: generate the shapes world (images + SA-Co gold JSON) from a seed.

`world generate --out DIR --images N --seed S` writes `DIR/images/<media id>.png`,
`DIR/saco_gold.json` (every positive pair of the standard phrase set, K negatives per image) and
`DIR/manifest.json` (the arguments). The same arguments always give byte-identical files.
"""

from __future__ import annotations

import json

import typer

from engine.world.samples import generate_samples
from engine.world.vocab import UnknownDomainError, domains
from storage.objectstore import ObjectStore
from storage.saco import ImageMeta, to_saco, write_saco
from storage.uri import join

GOLD_NAME = "saco_gold.json"
MANIFEST_NAME = "manifest.json"


def generate(out: str, images: int, seed: int, domain: str = "base", negatives_per_image: int = 16,
             image_size: int = 224, progress: bool = True) -> dict[str, str | int]:
    """Write the world's images and SA-Co gold JSON under `out`; returns where things went."""
    if domain not in domains():
        raise UnknownDomainError(f"unknown world domain {domain!r} (available: {list(domains())})")
    store = ObjectStore(fsync=False)
    pairs, metas = [], {}
    samples = generate_samples(images, seed, domain, image_size, negatives_per_image)
    if progress:
        from rich.progress import track

        samples = track(samples, total=images, description=f"world {domain}", transient=True)
    for sample in samples:
        file_name = f"images/{sample.key}.png"
        store.write_bytes(join(out, file_name), sample.image)
        metas[sample.key] = ImageMeta(file_name=file_name, height=sample.height, width=sample.width)
        pairs.extend(sample.pairs)
    gold_uri = write_saco(join(out, GOLD_NAME), to_saco(pairs, metas))
    manifest = {"generator": "sam3-engine world", "domain": domain, "images": images, "seed": seed,
                "image_size": image_size, "negatives_per_image": negatives_per_image,
                "pairs": len(pairs), "positive_pairs": sum(p.label == "positive" for p in pairs)}
    store.write_bytes(join(out, MANIFEST_NAME), json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
    return {"images_dir": store.uri(join(out, "images/")), "gold": gold_uri, "pairs": len(pairs),
            "positive_pairs": manifest["positive_pairs"], "images": images}


def write_world_shards(out: str, images: int, seed: int, domain: str = "base", negatives_per_image: int = 16,
                       image_size: int = 224, split: str = "train", max_samples: int = 100) -> list[str]:
    """Write the world's samples (images + GT pairs) as WebDataset shards `<out>/<split>-NNNNNN.tar`."""
    from storage.shards import write_shards

    if domain not in domains():
        raise UnknownDomainError(f"unknown world domain {domain!r} (available: {list(domains())})")
    samples = generate_samples(images, seed, domain, image_size, negatives_per_image)
    return write_shards(samples, out, split, max_samples=max_samples)


def register(app: typer.Typer) -> None:
    world_app = typer.Typer(help="The shapes world: a domain with exact ground truth.", no_args_is_help=True)
    app.add_typer(world_app, name="world")

    @world_app.command("generate")
    def generate_cmd(
        out: str = typer.Option(..., "--out", help="Folder or s3:// prefix to write to."),
        images: int = typer.Option(..., "--images", min=0, help="Number of images."),
        seed: int = typer.Option(0, "--seed", min=0, help="World seed: image i depends only on (seed, i)."),
        domain: str = typer.Option("base", "--domain", help=f"Image domain: {', '.join(domains())}."),
        negatives_per_image: int = typer.Option(16, "--negatives-per-image", min=0,
                                                help="Negative pairs per image (half of them hard negatives)."),
        image_size: int = typer.Option(224, "--image-size", min=32, help="Image side in pixels."),
    ) -> None:
        """Generate N images and their SA-Co gold JSON (positives, negatives, exhaustivity flags)."""
        try:
            result = generate(out, images, seed, domain, negatives_per_image, image_size)
        except UnknownDomainError as err:
            raise typer.BadParameter(str(err), param_hint="--domain") from None
        typer.echo(
            f"wrote {result['images']} images to {result['images_dir']}\n"
            f"wrote {result['pairs']} pairs ({result['positive_pairs']} positive) to {result['gold']}"
        )

    @world_app.command("shards")
    def shards_cmd(
        out: str = typer.Option(..., "--out", help="Folder or s3:// prefix for the shards."),
        images: int = typer.Option(..., "--images", min=1, help="Number of images."),
        seed: int = typer.Option(0, "--seed", min=0, help="World seed."),
        domain: str = typer.Option("base", "--domain", help=f"Image domain: {', '.join(domains())}."),
        negatives_per_image: int = typer.Option(16, "--negatives-per-image", min=0, help="Negatives per image."),
        image_size: int = typer.Option(224, "--image-size", min=32, help="Image side in pixels."),
        split: str = typer.Option("train", "--split", help="Shard name prefix."),
        per_shard: int = typer.Option(100, "--per-shard", min=1, help="Samples per shard."),
    ) -> None:
        """Write N ground-truth samples as WebDataset training shards."""
        try:
            shards = write_world_shards(out, images, seed, domain, negatives_per_image, image_size, split, per_shard)
        except UnknownDomainError as err:
            raise typer.BadParameter(str(err), param_hint="--domain") from None
        typer.echo(f"wrote {images} samples in {len(shards)} shards under {out}")
