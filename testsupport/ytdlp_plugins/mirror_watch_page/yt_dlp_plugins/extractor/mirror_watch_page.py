"""A yt-dlp extractor plugin for the local media server's watch pages, with YouTube's refusals.

``http://127.0.0.1:PORT/watch?v=ID`` is resolved the way YouTube's extractor
resolves a watch page: from a player response, here the file ``ID.player.json``
the tests put beside the media. Its ``playabilityStatus`` carries YouTube's
own wording when the video cannot be played ("Sign in to confirm you're not a
bot", "Private video", ...), which becomes the ExtractorError yt-dlp raises for
YouTube; an "OK" status plays ``ID.mp4``, unless ``"challenge": "unsolved"``,
which warns as yt-dlp does when it cannot solve YouTube's JavaScript challenge
and offers no format. So the downloader's handling of YouTube's refusals, and
loading plugins from --plugin_dirs, are tested without YouTube.

    {"playabilityStatus": {"status": "LOGIN_REQUIRED",
                           "reason": "Sign in to confirm you\\u2019re not a bot",
                           "subreason": "This helps protect our community."}}
"""

from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.utils import ExtractorError


class MirrorWatchPageIE(InfoExtractor):
  IE_NAME = "mirror:watch"
  _VALID_URL = r"https?://127\.0\.0\.1:\d+/watch\?v=(?P<id>[0-9A-Za-z_-]{11})"

  def _real_extract(self, url):
    video_id = self._match_id(url)
    base = url.split("/watch", 1)[0]
    player = self._download_json(f"{base}/{video_id}.player.json", video_id, note="Downloading player response")
    status = player.get("playabilityStatus") or {}
    if status.get("status") != "OK":
      message = ". ".join(part for part in (status.get("reason"), status.get("subreason")) if part)
      raise ExtractorError(message or "Video unavailable", expected=True, video_id=video_id)
    if player.get("challenge") == "unsolved":
      self.report_warning(  # yt-dlp's own words
          "n challenge solving failed: Some formats may be missing. Ensure you have a supported JavaScript runtime "
          "and challenge solver script distribution installed.", video_id=video_id)
      return {"id": video_id, "title": video_id, "formats": []}
    return {"id": video_id, "title": video_id, "url": f"{base}/{video_id}.mp4", "ext": "mp4"}
