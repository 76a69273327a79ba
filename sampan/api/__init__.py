"""The Docker Engine API over a unix socket: HTTP adapted to the engine's services.

    server.py    HTTP/1.1 on a unix socket: a thread per connection, keep-alive,
                 chunked bodies both ways, connection hijacking (Upgrade: tcp)
    router.py    method + path pattern -> handler; /vX.Y/ prefixes and version checks
    errors.py    sampan's errors -> HTTP status and docker's {"message": ...}, in one place
    progress.py  the JSON progress stream docker's CLI renders (pull, push)
    system.py    /_ping, /version, /info, /system/df, /auth
    images.py    /images/...

Handlers parse, call a service of sampan.engine, and encode; they hold no state.
"""
