namespace PrefTune.Training.Methods;

/// <summary>Merges an experiment's method parameters over a method's defaults, rejecting names the method does not have.</summary>
public static class MethodParameters
{
    /// <exception cref="ArgumentException">A parameter the method does not define (the message lists the known ones).</exception>
    public static IReadOnlyDictionary<string, double> Resolve(string method, IReadOnlyDictionary<string, double> defaults,
        IReadOnlyDictionary<string, double>? given)
    {
        var merged = new Dictionary<string, double>(defaults);
        foreach (var (name, value) in given ?? new Dictionary<string, double>())
        {
            if (!defaults.ContainsKey(name))
                throw new ArgumentException($"{method}: unknown parameter '{name}'; known: {string.Join(", ", defaults.Keys.Order(StringComparer.Ordinal))}");
            merged[name] = value;
        }
        return merged;
    }

    /// <summary>Throws unless <paramref name="ok"/>: "{method}: {name} = {value} is invalid; {rule}".</summary>
    public static double Require(this IReadOnlyDictionary<string, double> parameters, string method, string name, Func<double, bool> ok, string rule)
    {
        var value = parameters[name];
        if (!ok(value)) throw new ArgumentOutOfRangeException(name, value, $"{method}: {name} = {value} is invalid; {rule}");
        return value;
    }
}
