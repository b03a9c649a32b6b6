"""Dataset sources: the annotation files of AudioSet, VGGSound and
EPIC-KITCHENS-100 parsed into typed, frozen rows (rows.ClipRequest), their
label maps, clip identity (clip_id) and the AS-500K subset (as500k).

Pure Python and numpy; every parser also works one line at a time (the
*LineParser classes) for the Beam transforms that wrap them.
"""
