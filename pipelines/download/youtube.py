"""What yt-dlp needs to download from today's YouTube, and a check that it has it.

Since late 2025 YouTube's player hides the media URLs behind JavaScript
challenges: yt-dlp solves them by running its EJS scripts (the ``yt-dlp-ejs``
package) in an external JavaScript runtime (the ``deno`` package). The
project installs both through yt-dlp's ``default`` and ``deno`` extras; without
them formats go missing and downloads fail in ways that look like the clips'
fault. YouTube may also ask for proof-of-origin (PO) tokens, which provider
plugins supply.

The knobs pass through to yt-dlp, with its own syntax:

* ``--extractor_args "youtube:player_client=default,mweb;po_token=mweb.gvs+TOKEN"``
  (repeatable): yt-dlp's ``--extractor-args``;
* ``--js_runtimes node`` or ``node:/usr/bin/node`` (repeatable): yt-dlp's
  ``--js-runtimes``, runtimes enabled besides deno;
* ``--plugin_dirs DIR`` (repeatable): where yt-dlp looks for plugins besides
  the installed ones, e.g. a PO-token provider; each plugin is a folder
  ``DIR/NAME/yt_dlp_plugins/...`` (yt-dlp's layout).

:func:`check_youtube_support` says, offline, which runtimes, challenge-solver
scripts and PO-token providers the downloader's yt-dlp finds.

    python -m pipelines.download.youtube
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from typing import Optional, Sequence

import yt_dlp

_plugins_lock = threading.Lock()
_loaded_plugin_dirs: tuple[str, ...] = ()


class YoutubeOptionError(ValueError):
  """An --extractor_args or --js_runtimes value yt-dlp does not accept."""


def ytdlp_youtube_params(extractor_args: Sequence[str] = (), js_runtimes: Sequence[str] = ()) -> dict:
  """yt-dlp's params for the knobs, parsed by yt-dlp's own option parser (so the syntax is its own)."""
  from yt_dlp.globals import supported_js_runtimes

  for value in js_runtimes:
    name = value.split(":", 1)[0].lower()
    if name not in supported_js_runtimes.value:
      raise YoutubeOptionError(f"--js_runtimes {value!r}: yt-dlp knows {', '.join(sorted(supported_js_runtimes.value))}")
  argv = []
  for value in extractor_args:
    argv += ["--extractor-args", value]
  for value in js_runtimes:
    argv += ["--js-runtimes", value]
  if not argv:
    return {}
  import optparse

  try:
    parsed = yt_dlp.parse_options(argv).ydl_opts
  except (optparse.OptParseError, SystemExit, ValueError) as error:
    detail = str(error).strip().splitlines()[-1].split("error: ", 1)[-1]
    raise YoutubeOptionError(f"yt-dlp refuses {' '.join(argv)!r}: {detail}") from None
  params = {}
  if extractor_args:
    params["extractor_args"] = parsed["extractor_args"]
  if js_runtimes:
    params["js_runtimes"] = parsed["js_runtimes"]
  return params


def load_plugins(plugin_dirs: Sequence[str]) -> None:
  """Loads yt-dlp plugins (extractors, PO-token providers) from these directories, once per process.

  yt-dlp keeps plugins process-wide, as its command line does.
  """
  global _loaded_plugin_dirs
  directories = tuple(plugin_dirs)
  if not directories:
    return
  with _plugins_lock:
    if directories == _loaded_plugin_dirs:
      return
    from yt_dlp.globals import plugin_dirs as ytdlp_plugin_dirs
    from yt_dlp.plugins import load_all_plugins

    import importlib

    ytdlp_plugin_dirs.value = ["default", *directories]  # as yt-dlp's --plugin-dirs: besides the installed ones
    importlib.invalidate_caches()
    load_all_plugins()
    _loaded_plugin_dirs = directories


@dataclasses.dataclass(frozen=True)
class YoutubeSupport:
  """What the downloader's yt-dlp can use against YouTube.

  Attributes:
    ytdlp_version: yt-dlp's version.
    js_runtimes: usable JavaScript runtimes, name -> version.
    challenge_solvers: JS challenge providers that can run, name -> where their
      scripts come from ("python package 0.8.0", ...).
    po_token_providers: PO-token provider names available.
  """

  ytdlp_version: str
  js_runtimes: dict
  challenge_solvers: dict
  po_token_providers: tuple[str, ...]

  def problems(self) -> list[str]:
    """What stands between this yt-dlp and YouTube's formats, in words."""
    found = []
    if not self.js_runtimes:
      found.append("no JavaScript runtime: install the project as README.md says (yt-dlp's deno extra), "
                   "or name one with --js_runtimes")
    elif not self.challenge_solvers:
      found.append("no JS challenge solver scripts: install yt-dlp's default extra (yt-dlp-ejs)")
    return found

  def summary(self) -> str:
    runtimes = ", ".join(f"{name}-{version}" for name, version in self.js_runtimes.items()) or "none"
    solvers = ", ".join(f"{name} ({source})" for name, source in self.challenge_solvers.items()) or "none"
    providers = ", ".join(self.po_token_providers) or "none"
    return (f"yt-dlp {self.ytdlp_version}: JS runtimes: {runtimes}; JS challenge solvers: {solvers}; "
            f"PO token providers: {providers}")


class _Silent:
  def debug(self, message):
    pass

  info = warning = error = debug


def check_youtube_support(extractor_args: Sequence[str] = (), js_runtimes: Sequence[str] = (),
                          plugin_dirs: Sequence[str] = ()) -> YoutubeSupport:
  """Asks yt-dlp, without any network request, what it would use for YouTube."""
  # yt-dlp's own machinery, as `yt-dlp -v` reports it; these modules are yt-dlp's, pinned with it.
  from yt_dlp.extractor.youtube.jsc._builtin.ejs import EJSBaseJCP
  from yt_dlp.extractor.youtube.jsc._director import initialize_jsc_director
  from yt_dlp.extractor.youtube.jsc.provider import JsChallengeProviderRejectedRequest
  from yt_dlp.extractor.youtube.pot._director import initialize_pot_director
  from yt_dlp.extractor.youtube.jsc._builtin.ejs import ScriptType

  load_plugins(plugin_dirs)
  params = {"logger": _Silent(), "quiet": True, **ytdlp_youtube_params(extractor_args, js_runtimes)}
  with yt_dlp.YoutubeDL(params) as ydl:
    runtimes = {name: runtime.info.version for name, runtime in ydl._js_runtimes.items()  # pylint: disable=protected-access
                if runtime is not None and runtime.info is not None and runtime.info.supported}
    extractor = ydl.get_info_extractor("Youtube")
    solvers = {}
    for provider in initialize_jsc_director(extractor).providers.values():
      if not provider.is_available():
        continue
      source = "available"
      if isinstance(provider, EJSBaseJCP):
        try:
          script = provider._get_script(ScriptType.CORE)  # pylint: disable=protected-access
          source = f"{script.source.value} {script.version}"
        except JsChallengeProviderRejectedRequest:
          continue  # a runtime, but no scripts for it
      solvers[provider.PROVIDER_NAME] = source
    pot = tuple(sorted(provider.PROVIDER_NAME for provider in initialize_pot_director(extractor).providers.values()
                       if provider.is_available()))
  return YoutubeSupport(ytdlp_version=yt_dlp.version.__version__, js_runtimes=runtimes, challenge_solvers=solvers,
                        po_token_providers=pot)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m pipelines.download.youtube",
      description="Say, without any network request, what the downloader's yt-dlp can use against YouTube: "
      "JavaScript runtimes, challenge-solver scripts, PO-token providers. Exits 1 if something is missing.")
  parser.add_argument("--extractor_args", action="append", default=[], help="as for the builds")
  parser.add_argument("--js_runtimes", action="append", default=[], help="as for the builds")
  parser.add_argument("--plugin_dirs", action="append", default=[], help="as for the builds")
  args = parser.parse_args(argv)
  support = check_youtube_support(args.extractor_args, args.js_runtimes, args.plugin_dirs)
  print(support.summary())
  for problem in support.problems():
    print(f"problem: {problem}", file=sys.stderr)
  return 1 if support.problems() else 0


if __name__ == "__main__":
  sys.exit(main())
