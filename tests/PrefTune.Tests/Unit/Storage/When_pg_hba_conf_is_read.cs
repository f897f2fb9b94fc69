using PrefTune.Storage.Postgres;
using Xunit;

namespace PrefTune.Tests.Unit.Storage;

/// <summary>Which clusters still let local users in without a password (and so are migrated at their next start).</summary>
public sealed class When_pg_hba_conf_is_read : IDisposable
{
    private readonly string _dataDir = Directory.CreateTempSubdirectory("preftune-hba-").FullName;

    [Theory]
    // what initdb --auth=trust wrote for earlier versions
    [InlineData(true, "local   all             all                                     trust")]
    [InlineData(true, "host    all             all             127.0.0.1/32            trust")]
    // address and mask in two words: the method comes one word later
    [InlineData(true, "host all all 127.0.0.1 255.255.255.255 trust")]
    [InlineData(true, "hostnossl\tall\tall\t::1/128\ttrust   # loopback")]
    [InlineData(false, "host    all             all             127.0.0.1/32            scram-sha-256")]
    [InlineData(false, "local   all             all                                     scram-sha-256")]
    // initdb's own warning mentions trust in a comment; a database or user may be called trust
    [InlineData(false, "# CAUTION: Configuring the system for local \"trust\" authentication")]
    [InlineData(false, "host    trust           trust           127.0.0.1/32            scram-sha-256")]
    public void Only_a_trust_record_counts(bool trusts, string line)
    {
        File.WriteAllLines(Path.Combine(_dataDir, "pg_hba.conf"), ["# TYPE  DATABASE        USER            ADDRESS                 METHOD", "", line]);
        Assert.Equal(trusts, ClusterAuth.TrustsConnections(_dataDir));
    }

    public void Dispose() => Directory.Delete(_dataDir, recursive: true);
}
