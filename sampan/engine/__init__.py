"""The engine: what ``sampan daemon`` composes from the layers below.

    config.py   daemon.json (docker's keys that sampan honours; anything else refused)
    daemon.py   Engine: the configuration, the image store under ROOT/image, lifecycle
    images.py   the image service: list, inspect, history, tag, remove, prune, pull,
                push, load, save, import, disk usage -- records in docker's API shapes

The API (sampan.api) only adapts HTTP to these calls; nothing here knows HTTP.
"""
