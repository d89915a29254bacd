"""Figures: a long file (a talk looped, 3 hours by default) through the whole stack, and each service's
peak memory against its pod limit in deploy/k8s.

    python scripts/long_file.py [--hours 3] [--video ../shared/data/talking/vr_face_1.mp4]

The talk is made small first (160 px wide, 10 frames a second, 32 kb/s mono sound), then looped with
stream copy to the length asked, so that a 3-hour file stays under the upload limit. The stack is the one
`make up` starts (every service, the default bundle) in a scratch directory. The file goes in by the
client's presigned upload and the client waits; meanwhile every service process's resident memory is
sampled twice a second. Printed: how long each part took, the result's size and whether it crossed the
broker by claim check, and per service the peak RSS beside its pod's memory limit. Figures, not
assertions.
"""

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Final

import yaml  # type: ignore[import-untyped, unused-ignore]

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack import LocalStack, ServiceName, ServiceSpec, StackConfig, sign_up  # noqa: E402
from emotion_analyzer import Analysis, EmotionAnalyzer  # noqa: E402

MIB: Final = 1024 * 1024
DEPLOYMENTS: Final = {
    ServiceName.GATEWAY: "gateway",
    ServiceName.AUTH: "auth",
    ServiceName.TRANSCRIBER: "transcriber",
    ServiceName.VIDEO_ENCODER: "video-encoder",
    ServiceName.AUDIO_ENCODER: "audio-encoder",
    ServiceName.FUSION: "fusion",
}
REPORT_EVERY_S: Final = 300.0
UNITS: Final = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB}


def build_long_file(video: Path, seconds: float, out: Path) -> None:
    clip = out.with_name("clip.mp4")
    small = ["-vf", "scale=160:-2,fps=10", "-c:v", "libx264", "-preset", "veryfast", "-crf", "32"]
    sound = ["-c:a", "aac", "-b:a", "32k", "-ac", "1"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), *small, *sound, str(clip)], check=True)
    loop = [
        "-stream_loop",
        "-1",
        "-i",
        str(clip),
        "-t",
        f"{seconds:.1f}",
        "-c",
        "copy",
        "-movflags",
        "+faststart",
    ]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *loop, str(out)], check=True)


def pod_limits() -> dict[str, int]:
    """Each Deployment's container memory limit in deploy/k8s/base, in bytes."""
    limits = {}
    for path in (REPO / "deploy" / "k8s" / "base").glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if not document or document.get("kind") != "Deployment":
                continue
            container = document["spec"]["template"]["spec"]["containers"][0]
            raw = str(container.get("resources", {}).get("limits", {}).get("memory", ""))
            number, unit = raw[:-2], raw[-2:]
            if unit in UNITS and number.isdigit():
                limits[document["metadata"]["name"]] = int(number) * UNITS[unit]
    return limits


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Peaks(threading.Thread):
    """The peak resident memory of each service's process (by name: a restarted one keeps counting)."""

    def __init__(self, stack: LocalStack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.peaks: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        names = {name.value for name in ServiceName}
        began = last_report = time.monotonic()
        while not self.stop.is_set():
            for record in self.stack.state().processes:
                if record.name in names:
                    self.peaks[record.name] = max(self.peaks.get(record.name, 0), rss_bytes(record.pid))
            if time.monotonic() - last_report > REPORT_EVERY_S:  # the figures so far, should the run be cut
                last_report = time.monotonic()
                so_far = ", ".join(f"{name} {peak / MIB:.0f}" for name, peak in sorted(self.peaks.items()))
                print(f"  {last_report - began:7.0f} s  peak RSS so far (MiB): {so_far}", flush=True)
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument(
        "--video", type=Path, default=REPO.parent / "shared" / "data" / "talking" / "vr_face_1.mp4"
    )
    parser.add_argument("--bundle", type=Path, default=REPO / "var" / "bundles" / "default")
    parser.add_argument(
        "--seconds-per-media-second",
        type=float,
        default=1.5,
        help="what a stage may take per second of the file on this hardware (the gateway's stuck-job "
        "allowance and the encoders' poll interval); the default's 0.5 is sized for the GPU pools",
    )
    args = parser.parse_args()
    # A hair under the limit: the service accepts files up to three hours.
    seconds = min(args.hours * 3600.0, 3 * 3600.0 - 5.0)

    with tempfile.TemporaryDirectory(prefix="ea-long-") as scratch:
        root = Path(scratch)
        long_file = root / "talk-looped.mp4"
        started = time.perf_counter()
        build_long_file(args.video, seconds, long_file)
        print(
            f"built {long_file.name}: {seconds / 3600:.2f} h, {long_file.stat().st_size / MIB:.1f} MiB "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )

        allowance = str(args.seconds_per_media_second)
        slow_hardware = {
            ServiceName.GATEWAY: {"EA_STUCK_JOB_SECONDS_PER_MEDIA_SECOND": allowance},
            **{
                name: {"EA_STAGE_SECONDS_PER_MEDIA_SECOND": allowance}
                for name in (ServiceName.TRANSCRIBER, ServiceName.VIDEO_ENCODER, ServiceName.AUDIO_ENCODER)
            },
        }
        services = []
        for name in ServiceName:
            spec = ServiceSpec.default(name, fixed_ports=False)
            services.append(
                spec.model_copy(
                    update={
                        "ready_timeout_s": 300.0,
                        "extra_env": spec.extra_env | slow_hardware.get(name, {}),
                    }
                )
            )
        print(f"stages allowed {allowance} s per second of the file on this hardware", flush=True)
        config = StackConfig(root=root / "stack", services=services, bundle_dir=args.bundle.resolve())
        with LocalStack(config) as stack:
            peaks = Peaks(stack)
            peaks.start()
            account = sign_up(stack.service_url(ServiceName.GATEWAY))
            with EmotionAnalyzer(stack.service_url(ServiceName.GATEWAY), account.api_key, timeout=120) as api:
                began = time.perf_counter()

                def moved(analysis: Analysis) -> None:
                    stage = analysis.stage.value if analysis.stage else "queue"
                    print(
                        f"  {time.perf_counter() - began:7.0f} s  {analysis.status.value} ({stage})",
                        flush=True,
                    )

                created = api.analyze_file(long_file)
                print(f"uploaded and queued in {time.perf_counter() - began:.0f} s", flush=True)
                finished = api.wait(created.id, timeout=6 * 3600, on_status=moved)
                elapsed = time.perf_counter() - began
            peaks.stop.set()
            peaks.join()
            store = stack.object_store()
            bodies = store.list_keys("uploads", f"_payloads/{finished.id}/")

        print(
            f"\n{finished.status.value} in {elapsed:.0f} s "
            f"({elapsed / seconds:.3f} of the file's duration), attempt {finished.attempt}"
        )
        if finished.error is not None:
            print(f"error: {finished.error.code} at {finished.error.stage}: {finished.error.message}")
        if finished.result is not None:
            size = len(finished.result.model_dump_json())
            print(
                f"result: {len(finished.result.utterances)} utterances, {size / 1e6:.2f} MB as JSON, "
                f"{size / max(1, len(finished.result.utterances)):.0f} B per utterance"
            )
        topics = ", ".join(sorted({body.split("/")[2] for body in bodies}))
        print(f"event bodies carried by claim check: {len(bodies)} ({topics})")
        limits = pod_limits()
        print(f"\n{'service':<14} {'peak RSS':>10} {'pod limit':>10} {'share':>6}")
        for name, deployment in DEPLOYMENTS.items():
            peak, limit = peaks.peaks.get(name.value, 0), limits.get(deployment)
            share = f"{peak / limit:.0%}" if limit else "-"
            limit_text = f"{limit / MIB:.0f} MiB" if limit else "-"
            print(f"{name.value:<14} {peak / MIB:>6.0f} MiB {limit_text:>10} {share:>6}")


if __name__ == "__main__":
    main()
