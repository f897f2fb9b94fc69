namespace PrefTune.Scorer;

/// <summary>
/// At most <paramref name="capacity"/> values by key; adding past it drops (and disposes, if disposable) the least
/// recently used. Thread-safe; <c>create</c> runs under the cache's lock, so a value is built once per key.
/// </summary>
internal sealed class LruCache<T>(int capacity) : IDisposable where T : class
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (T Value, long Used)> _entries = [];
    private long _clock;   // a counter, not the time: two uses in one tick still order

    public int Count { get { lock (_lock) return _entries.Count; } }

    public T GetOrAdd(string key, Func<T> create)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(key, out var entry))
            {
                var value = create();   // a failure adds nothing and evicts nothing
                if (_entries.Count >= capacity)
                {
                    var oldest = _entries.MinBy(e => e.Value.Used);
                    _entries.Remove(oldest.Key);
                    (oldest.Value.Value as IDisposable)?.Dispose();
                }
                entry = (value, 0);
            }
            _entries[key] = entry with { Used = ++_clock };
            return entry.Value;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var (value, _) in _entries.Values) (value as IDisposable)?.Dispose();
            _entries.Clear();
        }
    }
}
